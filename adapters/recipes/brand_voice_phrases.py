"""Phrase tables for the brand-voice generator: products, store policies, and one entry per topic.

Every reply part is written in the brand voice (see `brand_voice`); customer messages are not, on
purpose: customers write casually, with slang and exclamation marks, and the reply must not copy it.
The policies are stated once here so every reply that mentions one gives the same answer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from adapters.recipes.common import Slots, lines
from adapters.recipes.ticket_phrases import FIRST, LAST

SITE = "alderandpine.example"
CARE_EMAIL = "care@alderandpine.example"
PHONE = "1-800-555-0142"

# (product name, kind); the kind selects the care, fit and specification answers. Names are singular
# ("Cascade Hiking Boot", as on a product page) so "the {product} is" always reads correctly.
PRODUCTS = [
    ("Ridgeline Rain Shell", "shell"), ("Coastal Rain Jacket", "shell"), ("Summit Down Jacket", "down"),
    ("Glacier Down Vest", "down"), ("Cascade Hiking Boot", "boots"), ("Switchback Trail Boot", "boots"),
    ("Harbor Merino Sweater", "wool"), ("Fjord Wool Cardigan", "wool"), ("Trailhead 30L Pack", "pack"),
    ("Ranger 45L Backpack", "pack"), ("Basecamp Two-Person Tent", "tent"), ("Meadow Three-Person Tent", "tent"),
    ("Canyon Flannel Shirt", "flannel"), ("Alpine Fleece Pullover", "fleece"), ("Timberline Fleece Jacket", "fleece"),
    ("Quarry Trail Runner", "shoes"),
]

CARE = {
    "shell": "wash it on a cold, gentle cycle with a technical cleaner rather than regular detergent, then tumble dry on low for twenty minutes to reactivate the water-repellent finish",
    "down": "wash it alone on a cold, gentle cycle with a down-specific detergent, then tumble dry on low with two clean tennis balls until no clumps remain",
    "boots": "brush off dried mud, wipe the uppers with a damp cloth and let them dry at room temperature, away from radiators, before applying our leather conditioner",
    "wool": "hand wash it in cold water with a wool wash, press out the water in a towel without wringing, and dry it flat in the shade",
    "pack": "empty the pockets, hand wash it in lukewarm water with a mild soap, and hang it upside down to dry; please avoid the washing machine",
    "tent": "set it up at home after each trip so it dries completely, sponge off any dirt with lukewarm water, and store it loosely rather than tightly rolled",
    "flannel": "wash it inside out on a cold cycle with similar colours and hang it to dry, which keeps the brushed finish soft",
    "fleece": "wash it inside out on a cold, gentle cycle without fabric softener and let it air dry",
    "shoes": "remove the insoles, rinse off mud with cold water and a soft brush, and let them dry naturally with newspaper inside",
}

FIT = {
    "shell": "it has a regular fit with room for a fleece underneath, so we recommend your usual size",
    "down": "it is cut close to the body for warmth, so if you plan to wear a thick sweater underneath, we suggest one size up",
    "boots": "they run about half a size small, so we recommend ordering half a size up from your usual shoe size",
    "wool": "it has a relaxed fit, so most customers take their usual size, or one size down for a closer fit",
    "pack": "its back length adjusts from 40 to 51 cm, which suits most torso lengths",
    "tent": "it fits its stated number of sleepers on standard pads, with a little room for gear in the vestibule",
    "flannel": "it has a classic fit and is pre-washed, so it will not shrink noticeably; we recommend your usual size",
    "fleece": "it has a regular fit designed for layering, so your usual size is the best choice",
    "shoes": "they fit true to size with a roomy toe box, so your usual running shoe size is the best choice",
}

SPECS = {
    "shell": "it is fully waterproof, rated to 20,000 mm, with taped seams and underarm vents",
    "down": "it is filled with 700-fill responsibly sourced down and weighs 410 grams in a size medium",
    "boots": "they have a waterproof membrane, a Vibram sole and weigh about 1.1 kg per pair",
    "wool": "it is knitted from 100 percent merino wool and is warm enough for autumn walks on its own",
    "pack": "it has a rain cover in the base pocket, a laptop sleeve and hip-belt pockets",
    "tent": "it is a three-season tent with two doors and weighs 2.3 kg packed",
    "flannel": "it is made from organic cotton flannel with a midweight brushed finish",
    "fleece": "it is made from 100 percent recycled polyester and is machine washable",
    "shoes": "they have a grippy lugged outsole and a water-resistant mesh upper, but they are not fully waterproof",
}

STORES = {
    "Portland": "our Portland store in the Pearl District",
    "Seattle": "our Seattle store on Capitol Hill",
    "Denver": "our Denver store in LoDo",
}
STORE_HOURS = "Monday to Saturday from 10 am to 7 pm and on Sunday from 11 am to 5 pm"

CUSTOMER_GREETINGS = lines("""
Hi,
Hello!
Hey there,
hey
Good morning,
Hi team,
Hello Alder & Pine,
Hi folks!
""")

CUSTOMER_CLOSINGS = lines("""
Thanks, {first}
- {first} {last}
Cheers, {first}
Thank you! {first}
Best, {first} {last}
{first}
Many thanks, {first} {last}
""")


@dataclass(frozen=True)
class Topic:
    key: str
    messages: tuple[str, ...]
    extras: tuple[str, ...]
    openings: tuple[str, ...]
    answers: tuple[str, ...]
    next_steps: tuple[str, ...]


def T(key: str, messages: str, extras: str, openings: str, answers: str, next_steps: str) -> Topic:
    return Topic(key, lines(messages), lines(extras), lines(openings), lines(answers), lines(next_steps))


TOPICS = [
    T("order_status", """
Where's my order {order}? I ordered the {product} on {date} and haven't heard anything.
Any update on order {order}? It's the {product} in size {size}.
just checking when order {order} will ship, it's the {product}
Could you tell me the status of my order {order}? I'm waiting on the {product}.
""", """
It's a birthday present, so I'm a bit anxious.
I'm heading out on a trip soon.
""", """
Thank you for checking in about order {order} and your {product}.
Thank you for your message about order {order}.
""", """
Orders placed before 2 pm Pacific leave our warehouse the same business day, and standard delivery takes three to five business days.
Each order ships within one business day, and standard delivery then takes three to five business days.
""", """
As soon as your {product} ships, you will receive an email with a tracking link for order {order}. If it has not arrived within five business days of that email, please reply and we will look into it personally.
You will receive a tracking link for order {order} by email the moment it leaves our warehouse. If you do not see it within two business days, please reply to this email and we will check on it for you.
"""),

    T("late_delivery", """
My order {order} was supposed to arrive {days} days ago. This is really frustrating!!
Still no sign of order {order} (the {product}). Tracking hasn't moved in {days} days.
order {order} is late. {days} days. what is going on
I'm disappointed, my {product} (order {order}) is {days} days late and I needed it for a trip.
""", """
I paid for express shipping.
""", """
Thank you for letting us know, and I am very sorry that order {order} is running {days} days late.
I am sorry that your {product} from order {order} has not reached you yet.
""", """
A delay of {days} days is longer than we would ever want, and we have asked our carrier to trace the parcel today.
That is not the experience we want for you, and our team has opened a trace with the carrier for order {order}.
""", """
We will email you with an update within one business day. If the parcel cannot be located, we will send a replacement {product} by express shipping at no cost to you.
We will email you with an update within one business day, and if the parcel cannot be located, we will send a replacement by express shipping at no cost to you.
You will hear from us within one business day. If the carrier cannot find the parcel, we will ship a new {product} by express delivery straight away.
"""),

    T("return_request", """
I'd like to return the {product} from order {order}. It's just not for me.
How do I send back the {product}? Order {order}. Never worn, tags on.
want to return the {product} (order {order}) pls
Can I return the {product} I bought on {date}? Order number {order}.
""", """
It's been about three weeks.
I'd prefer a refund rather than store credit.
""", """
Thank you for letting us know about the {product} from order {order}.
Of course, we are happy to help you return the {product} from order {order}.
""", """
You may return unworn items with their tags within 60 days, and the return label is free.
Returns are free within 60 days for unworn items with the tags attached.
""", """
Please visit {site}/returns, enter order {order}, and print the prepaid label. Your refund will reach your original payment method within five business days of the parcel arriving.
To begin, enter order {order} at {site}/returns and print the prepaid label. We will refund your original payment method within five business days of receiving the {product}.
"""),

    T("exchange_size", """
The {product} in {size} is too small. Can I swap it for a {size2}? Order {order}.
Hi, I need to exchange my {product} for size {size2} instead of {size}. Order {order}.
{product} doesn't fit, need {size2} instead of {size}, order {order}
Is it possible to exchange the {product} (order {order}) for the next size up, {size2}?
""", """
I'd like the same colour.
""", """
Thank you for your message, and I am sorry the {product} in size {size} did not fit.
We would be glad to exchange your {product} from order {order} for size {size2}.
""", """
Exchanges are always free, and we have reserved the {product} in size {size2} for you.
Exchanges cost nothing, and size {size2} of the {product} is currently in stock.
""", """
Please choose "exchange" for order {order} at {site}/returns and print the prepaid label. We will ship the {product} in size {size2} as soon as the carrier scans your return.
Simply start an exchange for order {order} at {site}/returns. Your new {product} in size {size2} will ship the moment your return is scanned.
"""),

    T("sizing_advice", """
I'm usually a {size} - what size should I get in the {product}?
Does the {product} run small? Normally I wear {size}.
which size {product} for someone who's normally {size}?
Before I order the {product}: how does it fit? I'm between {size} and {size2}.
""", """
I'll be layering it over a fleece.
""", """
Thank you for asking before you order the {product}.
That is a very good question about the {product}.
""", """
As a guide, {fit}.
In our experience, {fit}.
""", """
Our size chart at {site}/size-guide lists exact measurements, and if the {product} does not fit, exchanges are free within 60 days.
You will find detailed measurements at {site}/size-guide, and any exchange of the {product} is free within 60 days.
"""),

    T("product_care", """
How should I wash my {product}? Don't want to ruin it.
Best way to clean the {product}? It's covered in mud lol
any care tips for the {product}?
What is the right way to care for the {product}? I want it to last.
""", """
I bought it last winter.
""", """
Thank you for asking how to care for your {product}.
We are glad you want to keep your {product} in good condition.
""", """
We recommend that you {care}.
For the best results, please {care}.
""", """
Our full care guide is at {site}/care. If the {product} ever needs more than cleaning, our repair workshop is happy to help.
You can find more detail at {site}/care, and our workshop can also repair your {product} should it ever need it.
"""),

    T("damaged_item", """
My {product} arrived with a tear in the fabric. Order {order}. Not impressed.
The {product} from order {order} came damaged, the zip is broken!!
{product} arrived broken, order {order}
I just opened order {order} and the {product} is damaged. What now?
""", """
The box looked fine from the outside.
I have photos.
""", """
I am very sorry that your {product} from order {order} arrived damaged.
Thank you for telling us, and please accept our apologies for the damaged {product} in order {order}.
""", """
That should never happen, and we will send a replacement right away at no cost to you.
We want to make this right straight away, so a replacement {product} is being prepared for you.
""", """
Please reply with a photo of the damage, and we will ship the new {product} by express delivery and email you a prepaid label for the damaged one.
Once you reply with a photo, we will send the replacement by express shipping along with a free label to return the damaged {product}.
"""),

    T("compliment", """
Just wanted to say the {product} is amazing! Wore it all weekend. Thanks guys!
Your staff in {city} were so helpful when I bought the {product}. Awesome service!
love my new {product}, best purchase this year
I don't usually write reviews but the {product} is fantastic.
""", """
Will definitely be back.
""", """
Thank you so much for taking the time to write to us about your {product}.
What a kind message, thank you for sharing it with us.
""", """
It means a great deal to our team to hear that the {product} is serving you well.
We are delighted that the {product} has been such a good companion.
""", """
We have passed your words on to the whole team, and we hope the {product} joins you on many more adventures.
Your note has been shared with our team, and we look forward to helping you again.
"""),

    T("shipping_costs", """
How much is shipping? Thinking about ordering the {product}.
Do you have free shipping? Want the {product} but shipping costs put me off.
shipping cost for the {product}?
What does express delivery cost, and how fast is it?
""", """
I'm in the US.
""", """
Thank you for your interest in the {product}.
Thank you for asking about our delivery options.
""", """
Standard shipping is free on orders over $75 and otherwise costs $6.95, with delivery in three to five business days.
Orders over $75 ship free by standard delivery, which takes three to five business days; below that, standard shipping is $6.95.
""", """
If you need it sooner, express delivery costs $14.95 and arrives in one to two business days when you order before 2 pm Pacific.
Express delivery is also available for $14.95 and arrives within one to two business days of dispatch.
"""),

    T("international_shipping", """
Do you ship to {country}? I'd love the {product}.
Can I order the {product} from {country}? What about customs?
ship to {country}?
How long does delivery to {country} take and will I pay import fees?
""", """
I'm happy to pay for faster shipping.
""", """
Thank you for your interest from {country}.
We would be pleased to send your order to {country}.
""", """
We ship to {country}, and delivery usually takes seven to twelve business days.
Yes, we deliver to {country}, usually within seven to twelve business days.
""", """
Duties and taxes are calculated at checkout and paid in advance, so there is nothing extra to pay when your parcel arrives.
All duties and taxes are shown and prepaid at checkout, so you will not receive any surprise charges on delivery.
"""),

    T("store_hours", """
What time does your {city} store open on Sunday?
Is the {city} shop open this weekend? Want to try on the {product}.
{city} store hours?
Where exactly is your store in {city}, and when are you open?
""", """
I'm visiting for a few days.
""", """
Thank you for planning a visit to us in {city}.
We would be delighted to welcome you in {city}.
""", """
{store} is open {hours}.
You will find us at {store}, open {hours}.
""", """
If you would like to try the {product}, you may reserve it online for in-store pickup so it is waiting for you.
If you would like to try something on, you may reserve it online for in-store pickup so it is waiting for you when you arrive.
Should you wish, you can reserve the {product} online and collect it in {city} on the same day.
"""),

    T("gift_card", """
Does a gift card expire? Got one for my birthday, {giftcard}.
How do I check the balance on gift card {giftcard}?
gift card {giftcard} balance?
Can I use gift card {giftcard} in your {city} store as well as online?
""", """
It was a present from my aunt.
""", """
Thank you for your question about gift card {giftcard}.
What a lovely gift, and thank you for asking about card {giftcard}.
""", """
Our gift cards never expire and can be used both online and in all three of our stores.
Alder & Pine gift cards have no expiry date, and you may use them online or in any of our stores.
""", """
You can check the current balance of card {giftcard} at any time at {site}/giftcard.
To see the balance of card {giftcard}, please enter its number at {site}/giftcard.
"""),

    T("warranty_repair", """
The zip on my {product} broke after a year. Is that covered?
My {product} has a seam coming apart. Bought it {months} months ago. Warranty?
{product} zip broken after {months} months
Can you repair my {product}? The buckle snapped.
""", """
I still have the receipt.
""", """
Thank you for letting us know about your {product}, and I am sorry it needs attention.
I am sorry to hear about the trouble with your {product}.
""", """
All our products carry a two-year warranty against defects, and our workshop repairs zips, seams and buckles free of charge within that period.
Our two-year warranty covers defects such as this, and our repair workshop will fix it at no cost.
""", """
Please request a free repair label at {site}/repairs. Most repairs are completed and returned within two weeks.
To send it in, request a prepaid repair label at {site}/repairs, and we will return your {product} within about two weeks.
"""),

    T("price_adjustment", """
I bought the {product} on {date} and now it's on sale for less! Can I get the difference back?
The {product} dropped in price a week after I bought it (order {order}). Price match?
price dropped on the {product}, order {order}, refund difference?
Is there any price protection? The {product} I ordered ({order}) is cheaper now.
""", """
Feels a bit unfair.
""", """
Thank you for pointing this out about the {product}.
Thank you for letting us know about the new price of the {product}.
Thank you for writing to us about order {order} and the new price of the {product}.
""", """
If we lower the price within 14 days of your purchase, we are happy to refund the difference.
Our price adjustment policy refunds the difference when a price drops within 14 days of purchase.
""", """
If the purchase falls within that period, the difference will be refunded to your original payment method within five business days, with no need to return anything.
We have checked order {order}, and if it was placed within that period, the difference will reach your original payment method within five business days.
Once we confirm the purchase date, we will refund the difference to your original payment method within five business days.
"""),

    T("discount_code", """
My code {promo} isn't working at checkout! Says invalid.
Tried to use {promo} on the {product} but it won't apply.
{promo} doesn't work??
The discount code {promo} from your newsletter is rejected. Can you help?
""", """
I'm trying to order today.
""", """
Thank you for letting us know about code {promo}, and I am sorry for the frustration at checkout.
I am sorry that code {promo} did not work for you.
""", """
Codes from our newsletter apply to full-price items only and cannot be combined with other offers, which is the most common reason a code is declined.
Most often a code such as {promo} is declined because the basket contains sale items, which are excluded.
""", """
If your basket contains only full-price items, please reply with a screenshot and we will apply the discount to your order manually.
Should the code still not work on full-price items, simply reply and we will apply the discount for you by hand.
"""),

    T("cancel_order", """
I need to cancel order {order}, ordered the wrong size by mistake.
Please cancel my order {order} for the {product}.
cancel order {order} please
Can I still cancel order {order}? Placed it this morning.
""", """
Sorry for the hassle.
""", """
Thank you for getting in touch about order {order}.
Thank you for letting us know so quickly about order {order}.
""", """
Orders can be changed or cancelled within one hour of being placed; after that, they are already being packed.
We can cancel an order within one hour of purchase, before it reaches our packing team.
""", """
If order {order} has already shipped, please simply return it at no cost through {site}/returns once it arrives, and we will refund you in full.
Should order {order} already be on its way, you can return it free of charge at {site}/returns for a full refund.
"""),

    T("change_address", """
I put the wrong address on order {order}! Can you change it?
We're moving - can order {order} go to my new address instead?
wrong address on {order}, help
Is it possible to update the delivery address for order {order}?
""", """
The new address is in {city}.
""", """
Thank you for letting us know about the address on order {order}.
We are happy to help with the address on order {order}.
""", """
We can update the address while the order is still in our warehouse, which is usually within one hour of it being placed.
If order {order} has not yet left our warehouse, we can change the address straight away.
""", """
Please reply with the full new address, and we will confirm by email once it is updated. If the parcel has already shipped, we will ask the carrier to redirect it.
Simply reply with the complete new address; if the parcel is already on its way, we will request a redirect from the carrier.
"""),

    T("restock", """
When will the {product} be back in {size}?
Is the {product} coming back in stock? Been waiting for ages.
{product} restock date??
Will you restock the {product} in {colour}?
""", """
I'd really like it before winter.
""", """
Thank you for your interest in the {product}.
We are glad the {product} caught your eye.
""", """
We do not have a confirmed date yet, but the {product} is restocked regularly and most sizes return within a few weeks.
Our buying team restocks the {product} several times a year, although we cannot yet confirm an exact date.
""", """
Please select "Notify me" on the product page, and we will email you the moment it is available again.
If you choose "Notify me" on the product page, you will receive an email as soon as it is back in stock.
"""),

    T("loyalty_points", """
I bought the {product} but my Trail Club points haven't shown up.
How do Trail Club points work? I have {points} points.
where are my points for order {order}
Can I use my {points} Trail Club points on the {product}?
""", """
I've been a member for two years.
""", """
Thank you for being a Trail Club member.
Thank you for your question about your Trail Club points.
Thank you for asking about the Trail Club points for order {order}.
""", """
You earn one point for every dollar spent, points appear in your account 30 days after purchase, and every 200 points become a $10 reward.
Every dollar earns one point, points post to your account 30 days after purchase, and 200 points turn into a $10 reward.
""", """
Your rewards are applied automatically at checkout, and you can see your balance at any time at {site}/trail-club.
You can follow your points at {site}/trail-club, and rewards appear at checkout automatically.
The points for order {order} will appear at {site}/trail-club once the 30 days have passed, and rewards are applied at checkout automatically.
"""),

    T("product_question", """
Is the {product} any good in heavy rain?
Quick question about the {product} - how warm/heavy is it?
what's the {product} made of
Thinking of buying the {product} for a hiking trip. Can you tell me more about it?
""", """
I'm going to Scotland in the autumn.
""", """
Thank you for your question about the {product}.
Thank you for considering the {product} for your trip.
""", """
The {product} is a favourite with our customers: {spec}.
We can tell you that {spec}.
""", """
Full specifications are on the product page, and if it does not suit you, returns are free within 60 days.
You will find the full details on the product page, and every purchase may be returned free of charge within 60 days.
"""),

    T("refund_status", """
I returned the {product} (order {order}) two weeks ago and still no refund!
Has my return for order {order} arrived? Waiting on the refund.
refund for order {order}?
When will I get my money back for the {product}? Order {order}.
""", """
The tracking said it was delivered last week.
""", """
Thank you for your patience while we process the return for order {order}.
I am sorry you are still waiting for the refund on order {order}.
""", """
Refunds are issued to your original payment method within five business days of your return arriving at our warehouse, and your bank may take a few more days to show it.
Once a return reaches our warehouse, the refund is issued within five business days to the original payment method.
""", """
We have asked our returns team to check order {order} today, and we will email you as soon as the refund is confirmed.
Our returns team is checking order {order} now, and you will receive an email the moment the refund is processed.
"""),

    T("wrong_item", """
I ordered the {product} in {size} but got a completely different item. Order {order}.
Wrong item in my parcel! Order {order} was supposed to be the {product}.
got the wrong thing in order {order}, ordered {product}
You sent me size {size2} instead of {size} for the {product}. Order {order}.
""", """
I need it for next weekend.
""", """
I am very sorry that order {order} did not contain the {product} you chose.
Please accept our apologies for the mix-up with order {order}.
""", """
We will send the correct {product} today by express delivery at no cost to you.
The correct {product} is being packed now and will travel to you by express shipping, free of charge.
""", """
You will also receive a prepaid label by email to return the item sent in error, at your convenience.
A prepaid return label for the incorrect item will follow by email, and there is no rush to send it back.
"""),
]


def _pick(pool: tuple[str, ...] | list[str]):  # noqa: ANN202
    return lambda rng, s: rng.choice(pool)


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


# Reply slots that restate a customer fact; a reply template may use them only if the message did.
FACT_SLOTS = {"order", "product", "size", "size2", "date", "days", "months", "city", "country", "giftcard", "promo",
              "points", "colour"}
DERIVED = {"care": "product", "fit": "product", "spec": "product", "store": "city", "hours": "city"}

SIZES = ("XS", "S", "M", "L", "XL", "XXL")
SHOE_SIZES = ("6", "6.5", "7", "7.5", "8", "8.5", "9", "9.5", "10", "10.5", "11", "12")
SIZED_KINDS = {"shell", "down", "boots", "wool", "flannel", "fleece", "shoes"}


def _sizes(s: Slots) -> tuple[str, ...]:
    return SHOE_SIZES if s["kind"] in ("boots", "shoes") else SIZES

SLOT_MAKERS = {
    "first": _pick(FIRST),
    "last": _pick(LAST),
    "order": lambda rng, s: rng.choice(["AP-", "AP", "#"]) + _digits(rng, 6),
    "size": lambda rng, s: rng.choice(_sizes(s)[:-1]),
    "size2": lambda rng, s: _sizes(s)[_sizes(s).index(s["size"]) + 1],  # the next size up
    "date": lambda rng, s: f"{rng.choice(['March', 'April', 'May', 'June', 'September', 'October', 'November'])} {rng.randint(1, 28)}",
    "days": lambda rng, s: rng.choice(["three", "four", "five", "six", "seven", "ten"]),
    "months": lambda rng, s: str(rng.randint(4, 20)),
    "city": _pick(list(STORES)),
    "store": lambda rng, s: STORES[s["city"]],
    "hours": lambda rng, s: STORE_HOURS,
    "country": _pick(["Canada", "the United Kingdom", "Germany", "Ireland", "Australia", "the Netherlands", "France"]),
    "giftcard": lambda rng, s: f"GC-{_digits(rng, 4)}-{_digits(rng, 4)}",
    "promo": _pick(["TRAIL15", "WELCOME10", "AUTUMN20", "FRIENDS15", "NEWS10"]),
    "points": lambda rng, s: str(rng.choice([120, 180, 240, 350, 410, 600])),
    "colour": _pick(["forest green", "navy", "charcoal", "rust", "sand"]),
    "care": lambda rng, s: CARE[s["kind"]],
    "fit": lambda rng, s: FIT[s["kind"]],
    "spec": lambda rng, s: SPECS[s["kind"]],
    "site": lambda rng, s: SITE,
}
