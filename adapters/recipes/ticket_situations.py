"""The situations the ticket generator draws from: what happened, how customers say it, the labels.

Each `Situation` is one concrete problem or question (a duplicate charge, a parcel marked delivered
that never came). `facts` are alternative ways a customer states the core facts; every one of them
contains every slot that the summary and action need outside their optional `[...]` parts (a unit
test checks this), so a label never restates something the ticket does not say. `details` are
optional extra sentences; one starting with "~ " plays the problem down and is left out when an
escalation cue is used. `mods` lists the escalations that make sense for the situation (see
`ticket_triage` for the priority rules): deadline, blocked, scope, threat.

The tables are split by category across this module and `ticket_situations_more`.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.recipes.common import lines


@dataclass(frozen=True)
class Situation:
    key: str
    category: str
    priority: str  # the base priority the facts alone justify
    kind: str  # problem | request | question | feedback: which tones and asides fit
    mods: frozenset[str]
    subjects: tuple[str, ...]
    facts: tuple[str, ...]
    details: tuple[str, ...]
    summary: str
    action: str
    paid_access: bool = False  # the customer cannot use the service: high for paying tiers


def S(key: str, category: str, priority: str, kind: str, mods: str, subjects: str, facts: str,
      details: str, summary: str, action: str, paid_access: bool = False) -> Situation:
    return Situation(key, category, priority, kind, frozenset(mods.split()), lines(subjects), lines(facts),
                     lines(details), summary, action, paid_access)


BILLING = [
    S("duplicate_charge", "billing", "high", "problem", "threat", """
Charged twice
double charge??
Duplicate payment of {amount}
You billed me two times
Two identical charges on my card
""", """
I was charged twice for my {plan} subscription this month: two payments of {amount} on {date}.
My card statement shows two identical charges of {amount} from you on {date}, but I only have one {plan} account.
you charged me {amount} TWICE on {date}. one account, one plan ({plan}). why
Hello, I see on my bank two payments of {amount} the same day ({date}) for the {plan} plan. I pay only one time normally.
Looks like the {plan} renewal went through twice on {date} ({amount} each).
""", """
The invoice number on the first one is {invoice}.
The card ends in {last4}.
I only got one receipt email.
My bank says both payments are completed, not pending.
I've attached a screenshot of the statement.
""", "Customer was charged {amount} twice on {date} for one {plan} subscription[ (invoice {invoice})].",
      "Verify the duplicate {amount} charge from {date}, refund it[ on invoice {invoice}] and confirm by email."),

    S("charged_after_cancel", "billing", "medium", "problem", "threat", """
Charged after I cancelled
why am I still being billed
Cancelled subscription but charged {amount}
refund please - cancelled in {month}
""", """
I cancelled my {plan} subscription back in {month} but you charged me {amount} again on {date}.
I canceled the {plan} plan in {month} and got the confirmation email, yet there is a new charge of {amount} dated {date}.
still getting charged {amount} even though i cancelled the {plan} plan in {month}
I stop my {plan} subscription in {month}, I have the email of confirmation. But on {date} you take {amount} again from my account.
""", """
I still have the cancellation confirmation email if you need it.
I haven't logged in since then.
I don't even have the app installed anymore.
This happened to a friend of mine too, so I don't think I'm the only one.
""", "Customer cancelled the {plan} plan in {month} but was charged {amount} again[ on {date}].",
      "Confirm the {month} cancellation, refund the {amount} charge[ from {date}] and make sure no further renewals run."),

    S("refund_not_received", "billing", "medium", "problem", "threat", """
Where is my refund?
Refund still not received
refund {amount}
Still waiting on the refund you promised
""", """
Your colleague confirmed a refund of {amount} on {date}, but it still hasn't shown up on my card.
You promised a refund of {amount} on {date}. It is now {days} days later and I have nothing.
still no refund. {amount}, approved {date}. how long does this take??
I was told the {amount} would be back on my account within 5 days. That was on {date}.
""", """
My case number from the last conversation is {case}.
The card ends in {last4}.
My bank says they have no incoming refund from you.
I checked my statement again this morning.
""", "A {amount} refund approved on {date} has not reached the customer's account[ (case {case})].",
      "Check the status of the {amount} refund from {date} with the payment provider and send the customer the refund reference."),

    S("overcharged_price", "billing", "medium", "problem", "threat deadline", """
Wrong amount on my invoice
Overcharged?
invoice {invoice} is wrong
Why {amount} instead of the usual price?
""", """
My invoice {invoice} says {amount}, but the {plan} plan I signed up for is cheaper than that. Nobody told me about a price change.
Invoice {invoice} charged {amount} for the {plan} plan, the website still shows a lower price for it.
why is invoice {invoice} {amount}?? {plan} was cheaper when i signed up
Good day, the invoice {invoice} have amount {amount} but my plan {plan} is less expensive. Please explain this difference.
""", """
I signed up with the launch discount and it should be valid for 12 months.
Last month it was a lot less.
Nothing changed on our side, same number of users.
I'd like a corrected invoice.
""", "Customer says invoice {invoice} charged {amount} for the {plan} plan, more than the price they signed up for.",
      "Compare invoice {invoice} with the customer's {plan} price, explain the difference or issue a corrected invoice and refund."),

    S("invoice_copy", "billing", "low", "request", "deadline", """
Invoice needed
Need a receipt for {month}
Can I get an invoice with our VAT number
invoice pls
""", """
Could you send me an invoice for the {plan} subscription payment of {amount}? Our accountant needs it with our VAT number {vat}.
I need a proper invoice for the {amount} I paid in {month}; the receipt email doesn't show our VAT number {vat}.
can u send invoice for {month}, {amount}. vat number {vat}
Please I need the invoice of {month} ({amount}) with the VAT number of our company {vat} for the accounting.
""", """
The company name should be {company}.
The receipt email only shows the last four digits of the card.
I couldn't find a download button in the billing page.
Please send it to this email address.
""", "Customer needs an invoice for the {amount} payment[ from {month}] showing VAT number {vat}.",
      "Generate an invoice for the {amount} payment with VAT number {vat}[ for {company}] and email it to the customer."),

    S("payment_failed_suspended", "billing", "high", "problem", "threat scope", """
Payment failed, account suspended
Card declined but it works everywhere else
Can't pay, lost access
subscription suspended??
""", """
Your system says my payment failed and now my {plan} account is suspended, but my card works fine everywhere else.
The {amount} renewal got declined twice and you downgraded us from {plan}. The card has plenty of funds.
payment keeps failing ({error_pay}) and now we can't use {plan} features at all
I try to pay the {amount} for {plan} but always comes the error {error_pay}. Now my account is blocked.
""", """
I tried two different cards.
My bank says they don't see any declined attempt from you.
All our projects are in there.
I updated the card yesterday.
""", "Customer's {plan} renewal payment keeps failing[ with {error_pay}] and the account has been suspended or downgraded.",
      "Check the payment processor logs for the failed {plan} payment, restore access during a grace period and help the customer retry."),

    S("update_card", "billing", "low", "question", "", """
How do I change my card?
Update payment method
new credit card
""", """
My card expires next month. Where do I update the payment method for my {plan} subscription?
How can I change the credit card used for the {plan} plan? I got a new one from my bank.
got a new card, how do i update it for the {plan} subscription
Hello, I want to change the card for paying {plan}, the old one is expired soon. How I do this?
""", """
The old card ends in {last4}.
I looked in settings but only see the current card.
I'd prefer to pay by PayPal if that's possible.
""", "Customer asks how to update the payment card on their {plan} subscription.",
      "Send the customer the steps to update the payment method in billing settings for the {plan} subscription."),

    S("cancel_subscription", "billing", "medium", "request", "deadline", """
Cancel my subscription
cancel
Please stop the renewal
Unsubscribe from {plan}
""", """
Please cancel my {plan} subscription. I can't find the option anywhere in the app.
I'd like to cancel {plan} before it renews on {date}. I don't want to be charged {amount} again.
cancel my {plan} plan please. dont renew it
I want to finish my {plan} subscription, please do not take more money. The button for cancel I do not find.
""", """
We're moving to another tool for budget reasons.
I barely used it in the last few months.
Please confirm by email once it's done.
Nothing wrong with the service, I just don't need it anymore.
""", "Customer asks to cancel the {plan} subscription[ before the {amount} renewal on {date}].",
      "Cancel the {plan} subscription so it does not renew[ on {date}] and send the customer a cancellation confirmation."),

    S("unexpected_renewal_refund", "billing", "medium", "request", "threat", """
Refund for renewal I didn't want
Annual renewal charged without warning
{amount} renewal - please refund
""", """
My {plan} plan renewed for a full year at {amount} on {date}. I got no reminder and I haven't used it since. Can I get a refund?
You renewed my annual {plan} subscription for {amount} on {date} without any warning email. I'd like it refunded.
auto renewed {plan} for {amount} on {date}, didnt want it, pls refund
Yesterday I see you renew {plan} for one year, {amount}, on {date}. I did not want this, I ask the refund please.
""", """
I haven't opened the app since last spring.
Most companies send a reminder before an annual renewal.
I'm happy to cancel immediately.
""", "Customer's {plan} plan auto-renewed for {amount} on {date} and they want a refund.",
      "Check usage since the {date} renewal, refund the {amount} per the renewal policy and cancel the {plan} plan."),

    S("plan_pricing_question", "billing", "low", "question", "", """
Question about plans
Pro vs Team?
pricing question
What happens after the trial?
""", """
What's the difference in price between the {plan} plan and the next tier up? Is there a discount for paying yearly?
My trial ends on {date}. Will I be charged automatically for {plan}, and how much?
how much is {plan} per month if we pay yearly
Hi, is there discount for students or nonprofits on the {plan} plan? We are small charity.
""", """
We'd be about {seats} users.
I couldn't find this on the pricing page.
We're comparing a few tools at the moment.
""", "Customer asks about pricing for the {plan} plan[ for {seats} users].",
      "Answer with the {plan} pricing, yearly discount and any applicable discounts, linking the pricing page."),

    S("trial_converted", "billing", "medium", "problem", "threat", """
Charged when trial ended
I forgot to cancel the trial
Trial turned into {amount} charge
""", """
My free trial ended on {date} and I was charged {amount} for {plan}. I never meant to continue. Could you refund it?
I was billed {amount} on {date} when the trial ended. I thought it would just stop. I haven't used {plan} since.
trial ended and you took {amount}. i didnt want {plan}. refund?
The free trial was finish on {date} and you charge me {amount} for {plan}. I did not know it is automatic.
""", """
I didn't even add any projects.
I didn't see any reminder email.
I'm a student and this is a lot of money for me.
""", "Customer's trial converted to a paid {plan} plan with a {amount} charge[ on {date}] that they did not intend.",
      "Refund the {amount} trial-conversion charge[ from {date}] if unused and cancel the {plan} subscription."),

    S("vat_reverse_charge", "billing", "medium", "problem", "deadline", """
VAT charged incorrectly
We should not be charged VAT
Invoice {invoice} includes VAT
""", """
Invoice {invoice} includes VAT even though we entered our EU VAT number {vat}. As a business this should be reverse charged.
You charged VAT on invoice {invoice} although our VAT ID {vat} is in the billing profile.
vat on invoice {invoice}?? we are a business, vat id {vat}
Our invoice {invoice} have VAT but we are company with VAT number {vat}, must be reverse charge.
""", """
Our accountant flagged it this morning.
The company is {company}.
Please correct all invoices since {month}.
""", "Business customer was charged VAT on invoice {invoice} despite VAT number {vat}.",
      "Validate VAT number {vat}, reissue invoice {invoice} with reverse charge and refund the VAT amount."),

    S("promo_not_applied", "billing", "medium", "problem", "threat", """
Discount code didn't work
Promo code not applied
Charged full price
""", """
I used the code {promo} at checkout but was charged the full {amount}.
The discount code {promo} showed as accepted, then the charge was {amount}, which is the normal price.
used code {promo}, still paid {amount} full price
I put the code {promo} but the payment is {amount}, without discount. Can you return the difference?
""", """
The code came in your newsletter last week.
It said valid until the end of the month.
My order number is {order}.
""", "Customer was charged the full {amount} although promo code {promo} was accepted at checkout[ on order {order}].",
      "Check promo code {promo} validity and refund the discount difference on the {amount} charge if it applies."),

    S("unknown_charge", "billing", "medium", "problem", "threat", """
What is this charge?
Unknown charge on statement
is this from you?
""", """
There's a charge of {amount} on my card from {descriptor} on {date}. I don't remember signing up for anything. Is this you?
My bank statement shows {descriptor} {amount} on {date}. What is this for?
who is {descriptor}? {amount} taken on {date}
I see {amount} from {descriptor} on {date} in my bank. I don't know what it is, please explain.
""", """
Maybe my husband signed up, I don't know.
I have never received an invoice from you.
I haven't reported it to my bank yet.
""", "Customer does not recognise a {amount} charge from {descriptor} on {date}.",
      "Look up the {amount} charge from {date} by card and email, explain what it was for and offer a refund if it was unauthorised."),

    S("charged_repeatedly_now", "billing", "urgent", "problem", "", """
You keep charging my card
STOP charging me
Charges every few minutes
""", """
Your system is charging my card {amount} over and over. I count {count} charges since {since} and new ones keep appearing.
My card has been charged {amount} {count} times since {since} and it's still going.
you're charging me {amount} again and again, {count} times since {since}, make it stop
Every few minutes comes new charge {amount} on my card. Already {count} times since {since}. Please stop now!
""", """
My account is now overdrawn.
I have frozen the card with my bank for now.
My balance is almost zero.
""", "Customer's card is being charged {amount} repeatedly, {count} times since {since}, and it is still happening.",
      "Stop the recurring payment loop on the customer's account immediately, then refund every duplicate {amount} charge."),

    S("paid_no_order", "billing", "high", "problem", "threat", """
Money taken but no order
Paid but order not confirmed
checkout charged me, no confirmation
""", """
I paid {amount} at checkout on {date} and the money left my account, but I never got an order confirmation and there's no order in my account.
The payment of {amount} went through on {date} but the site showed an error and there is no order.
charged {amount} on {date}, no order, no email. where did my money go
I made the payment {amount} on {date}, the bank confirm, but I have no order and no email from you.
""", """
I didn't try again in case it charges twice.
The bank reference is {bankref}.
I paid with Apple Pay.
""", "Customer paid {amount} on {date} but no order was created or confirmed[ (bank reference {bankref})].",
      "Find the {amount} payment from {date}, then either create the order or refund the payment and confirm to the customer."),

    S("downgrade_plan", "billing", "low", "request", "", """
Downgrade
switch to a cheaper plan
Move us from {plan} to Basic
""", """
We'd like to downgrade from {plan} to the basic plan at the next renewal. Do we get a prorated credit?
How do I switch from {plan} to a cheaper plan? We don't use most of the features.
want to downgrade from {plan}, how
Please change our plan {plan} to the small one. We are less people now.
""", """
We're down to {seats} users.
Keep all our data if possible.
No rush, the renewal is next month.
""", "Customer wants to downgrade from the {plan} plan to a cheaper plan.",
      "Schedule the downgrade from {plan} at the next renewal and explain any proration credit."),

    S("billed_too_many_seats", "billing", "medium", "problem", "deadline threat", """
Billed for too many seats
Seat count on invoice is wrong
Invoice {invoice}: wrong number of users
""", """
Invoice {invoice} bills us for {seats_billed} seats, but we only have {seats} active users. That's {big_amount} too much.
We were invoiced for {seats_billed} seats on {invoice}, we have {seats}. Please correct it, the difference is {big_amount}.
{seats_billed} seats on invoice {invoice}?? we have {seats} users
The invoice {invoice} counts {seats_billed} users but we are only {seats} in our team, the difference is {big_amount}.
""", """
We removed several people last month.
Our procurement team won't pay the invoice as it is.
The admin page shows the correct number.
""", "Invoice {invoice} bills {seats_billed} seats but the customer has {seats} users[, an overcharge of {big_amount}].",
      "Verify active seats, reissue invoice {invoice} for {seats} seats and credit the difference[ of {big_amount}]."),

    S("payment_methods", "billing", "low", "question", "", """
Payment options
Can I pay by bank transfer?
PayPal?
""", """
Can we pay the {plan} subscription by bank transfer or purchase order instead of a credit card?
Do you accept PayPal for the {plan} plan?
can i pay {plan} with paypal
Is it possible to pay the {plan} plan with invoice? Our company don't use credit cards.
""", """
Our finance department only does bank transfers.
We're based in {country}.
""", "Customer asks which payment methods are accepted for the {plan} plan.",
      "Explain the accepted payment methods for the {plan} plan, including invoice or bank transfer options."),

    S("refund_closed_card", "billing", "medium", "problem", "", """
Refund went to a closed card
Can't receive my refund
""", """
You refunded {amount} to my old card ending {last4}, but that card was closed last month. How do I get the money?
The {amount} refund went to the card ending {last4}, which doesn't exist anymore. My bank can't help.
refund of {amount} went to old card {last4} which is cancelled
Your refund {amount} is sent to my card {last4} but this card is closed. What can we do?
""", """
I can give you my IBAN instead.
The bank said the money bounces back to the merchant.
""", "A {amount} refund was sent to the customer's closed card ending {last4}.",
      "Check whether the {amount} refund to card {last4} bounced and reissue it by another method."),

    S("gift_card_balance", "billing", "medium", "problem", "", """
Gift card balance wrong
Gift card not working
gift card
""", """
My gift card {giftcard} should have {amount} on it but the checkout says the balance is zero.
I got a {amount} gift card ({giftcard}) for my birthday and it says it's already been used. I never used it.
gift card {giftcard} shows 0 balance, it was {amount}
The gift card {giftcard} of {amount} is not accepted on your website, it say invalid.
""", """
It was bought in one of your stores.
I still have the receipt.
""", "Customer's gift card {giftcard} worth {amount} shows no balance or is rejected.",
      "Check the transaction history of gift card {giftcard} and restore the {amount} balance if it was not used."),

    S("price_increase_feedback", "billing", "low", "feedback", "", """
Price increase
not happy about the new price
{plan} price went up again
""", """
I just saw the {plan} plan is going up to {amount} a month. That's a big jump for a long-time customer.
Your email says {plan} will cost {amount} from next month. I've been with you for years and this feels unfair.
{amount} for {plan} now? seriously
The new price {amount} for {plan} is too much for me. Is there a way to keep the old price?
""", """
I might have to look at other options.
At least give existing customers some notice.
""", "Customer objects to the {plan} price increase to {amount}.",
      "Acknowledge the feedback on the {plan} price change and offer any loyalty discount or annual option available."),

    S("invoice_wrong_details", "billing", "low", "request", "deadline", """
Wrong company name on invoice
Invoice address needs correcting
Please fix invoice {invoice}
""", """
Invoice {invoice} shows our old company address. Can you reissue it with our new address in {city}?
The company name on invoice {invoice} is misspelled, it should read {company}.
invoice {invoice} has the wrong address, we moved to {city}
On the invoice {invoice} the name of company is not correct, correct is {company}. Please send new one.
""", """
Our accountant won't accept it like this.
Please also update it for future invoices.
""", "Customer needs invoice {invoice} reissued with corrected company details.",
      "Update the billing profile and reissue invoice {invoice} with the corrected company details."),

    S("double_subscription_store", "billing", "medium", "problem", "", """
Paying twice - app store and website
Two subscriptions
""", """
I realised I'm paying for {plan} twice: once through the App Store and once on your website, {amount} each.
Looks like I subscribed to {plan} on my phone and on the website. I've been charged {amount} twice a month.
two {plan} subscriptions, one in google play, one on web. {amount} each
I have two subscription {plan}, one from the iPhone and one from the website, I pay {amount} two times.
""", """
It's been like this for about three months.
Please keep the one on the website.
""", "Customer is paying {amount} twice for {plan}, once through an app store and once on the website.",
      "Cancel the web {plan} subscription, refund the overlapping {amount} charges and explain how to cancel the app store one."),

    S("bank_transfer_unmatched", "billing", "medium", "problem", "deadline", """
Paid but invoice still open
Payment reminder although we paid
Invoice {invoice} is paid
""", """
We paid invoice {invoice} ({amount}) by bank transfer on {date} but we keep getting overdue reminders.
Your system says invoice {invoice} is overdue, but we transferred {amount} on {date}.
invoice {invoice} paid on {date}, {amount}, stop sending reminders
We did the transfer for invoice {invoice}, {amount}, on {date}. Still we get the reminder for payment.
""", """
The transfer reference was {bankref}.
The reminder says the account will be suspended.
I can send the bank confirmation.
""", "Customer paid invoice {invoice} ({amount}) by bank transfer on {date} but it still shows as unpaid.",
      "Match the {amount} transfer from {date} to invoice {invoice}, mark it paid and stop the reminders."),

    S("app_store_refund", "billing", "medium", "request", "", """
Refund for in-app purchase
Accidental purchase
my kid bought something
""", """
My son bought the {plan} upgrade in the app for {amount} without asking. Can this be refunded?
I accidentally tapped the yearly {plan} option and got charged {amount}. I meant the monthly one.
accidentally bought {plan} for {amount}, want a refund
My daughter buy {plan} in your app, {amount}, without my permission. Please give back the money.
""", """
It was bought through the Google Play store.
It happened this morning.
""", "Customer wants a refund of an accidental {amount} in-app purchase of {plan}.",
      "Explain the app store refund process for the {amount} {plan} purchase or refund it directly if it was bought on the web."),

    S("enterprise_invoice_error", "billing", "high", "problem", "deadline", """
Renewal invoice is wrong by {big_amount}
Invoice {invoice} does not match our order form
""", """
Our renewal invoice {invoice} is {big_amount} higher than the signed order form. It looks like the wrong number of seats was used.
Invoice {invoice} bills {big_amount} more than we agreed in the contract. Procurement has stopped payment.
renewal invoice {invoice} is off by {big_amount} vs our contract
The invoice {invoice} for renewal is {big_amount} more than our contract. We cannot pay this.
""", """
The order form reference is {contract}.
Our fiscal year closes soon.
Our account manager is on holiday.
""", "Renewal invoice {invoice} is {big_amount} above the customer's signed contract.",
      "Check invoice {invoice} against the signed contract, issue a corrected invoice for the {big_amount} difference and inform the account manager."),
]


TECHNICAL = [
    S("app_crash_launch", "technical", "high", "problem", "scope", """
App crashes on startup
app wont open
Crash after update
{app} keeps closing
""", """
Since the update to {version}, {app} crashes as soon as I open it. I can't get past the splash screen.
{app} closes immediately on launch on my {phone}. Reinstalling didn't help.
{app} crashes instantly when i open it. {phone}, version {version}
After update the {app} is not opening, it close itself after one second. My phone is {phone}.
""", """
I'm on {os}.
I restarted the phone twice.
It worked fine last week.
I use it every day for work.
""", "{app} crashes on launch[ on {phone}][ since version {version}].",
      "Collect the crash logs[ for version {version}], check known crash reports[ for {phone}] and send a workaround or fix timeline."),

    S("feature_broken_workaround", "technical", "medium", "problem", "", """
{feature} not working
Bug in {feature}
{feature} does nothing
""", """
{feature} has stopped working: when I click it, nothing happens. I can work around it, but it's annoying.
{feature} fails with "{error}" every time. I've been doing it manually instead.
{feature} broken again. "{error}"
When I use {feature} it gives me the message "{error}". I can do it by hand but it takes long time.
""", """
I tried in another browser, same thing.
I cleared the cache and cookies.
It started around {since}.
A colleague has the same issue.
""", "For the customer, {feature} is failing[ with \"{error}\"], though a manual workaround exists.",
      "Reproduce the failure of {feature}[ with \"{error}\"], file a bug with the details and update the customer."),

    S("outage", "technical", "urgent", "problem", "", """
Site down?
Is your service down
Nothing loads
everything is broken
""", """
Your website and app have been completely down for us since {since}. Nothing loads, we just get "{error}".
None of our team can load the dashboard since {since}. Every page returns "{error}".
is {app} down?? nothing has worked since {since}, just "{error}"
Since {since} the service is not working for all our company. Only error "{error}".
""", """
Your status page says everything is operational.
Our whole team is sitting idle.
Customers are calling us because they can't check out.
We're losing orders every minute.
""", "The service has been completely down for the customer since {since}, returning \"{error}\".",
      "Open an incident, confirm the outage with the on-call engineer and send the customer status updates until it is resolved."),

    S("api_errors", "technical", "medium", "problem", "scope blocked", """
API returning {http_error}
Intermittent API failures
Errors from the API since {since}
""", """
About {percent}% of our requests to your API have been failing with {http_error} since {since}.
Since {since} we see {http_error} on roughly {percent}% of calls to the API. Request ID {request_id}.
api throwing {http_error} on ~{percent}% of requests since {since}
From {since} the API give {http_error} for around {percent}% of requests. Example request id {request_id}.
""", """
Nothing changed on our side.
We use the official SDK, version {version}.
~ Our retry logic is hiding most of it for now.
~ Retries mostly work.
Latency is also much higher than usual.
""", "About {percent}% of the customer's API requests have failed with {http_error} since {since}.",
      "Check API error rates since {since}[ and request {request_id}], and escalate to engineering if the {http_error} errors are on our side."),

    S("slow_performance", "technical", "medium", "problem", "", """
Very slow
dashboard takes forever
Performance issues
""", """
The dashboard has become extremely slow: every page takes {seconds} seconds to load since {since}.
{app} is painfully slow lately, around {seconds} seconds for each screen. It used to be instant.
everything is so slow, {seconds}s per page
Since {since} the loading of each page take {seconds} seconds. Before it was fast.
""", """
Our internet connection is fine.
It's worst in the mornings.
We have about {seats} projects in the account.
""", "The customer's pages take about {seconds} seconds to load[ since {since}].",
      "Check performance metrics for the customer's account, gather a HAR file and escalate if the {seconds}-second load times are confirmed."),

    S("sync_broken", "technical", "medium", "problem", "blocked scope", """
Sync not working
{integration} sync stopped
Calendar not updating
""", """
The {integration} sync stopped working on {date}. New items don't show up anymore.
Nothing from {integration} has synced since {date}. I reconnected the integration twice.
{integration} sync dead since {date}
The synchronisation with {integration} is not working since {date}, I tried to connect again, no change.
""", """
The settings page still says "connected".
I get no error message at all.
It's the same on my phone and laptop.
""", "The {integration} sync has not worked since {date}.",
      "Check the {integration} integration logs since {date}, re-authorise the connection and escalate if syncing does not resume."),

    S("webhooks_stopped", "technical", "medium", "problem", "scope blocked", """
Webhooks not firing
No webhook events since {since}
webhooks???
""", """
Our webhook endpoint hasn't received any events since {since}. The endpoint is up and returns 200.
Webhooks stopped arriving around {since}. Our logs show nothing from you, and the test button in the dashboard says "sent".
no webhooks since {since}. endpoint is fine
We don't receive any webhook from {since}, but our server is working, we tested it.
""", """
Our endpoint is {url}.
It's the second time this month.
Orders aren't being marked as paid on our side because of this.
""", "The customer's webhook endpoint has received no events since {since}.",
      "Check webhook delivery logs for the customer since {since}, replay missed events and report the cause."),

    S("data_loss", "technical", "urgent", "problem", "", """
All my data is gone
Projects disappeared
lost everything??
""", """
After the update on {date}, all my projects are gone. {count} projects, years of work, just empty.
I logged in this morning and every note I had is missing. The account shows 0 items. This was {count} notes.
all my files are GONE since {date}. {count} of them
After the update of {date} all my {count} projects are disappeared. Please help me to get them back.
""", """
I haven't deleted anything.
I don't have another backup.
We need them for a client delivery.
The storage bar still shows the same usage.
""", "The customer's {count} projects or notes disappeared[ after the update on {date}].",
      "Escalate to engineering to restore the customer's {count} missing items from backup and stop any further cleanup jobs."),

    S("device_wifi", "technical", "medium", "problem", "", """
{device} won't connect to wifi
Wifi problem
setup fails
""", """
My {device} won't connect to my wifi. Setup gets to the last step and then says "{error}".
I can't get {device} onto my home network. Every other device connects fine.
{device} wont connect to wifi, says "{error}"
The {device} is not connecting to the wifi, always "{error}" at the end of setup.
""", """
My router is a {router}.
I tried the 2.4 GHz network too.
I did a factory reset already.
""", "The customer's {device} fails to connect to wifi during setup[ with \"{error}\"].",
      "Walk the customer through the {device} wifi troubleshooting steps and request the device logs if it still fails."),

    S("bluetooth_pairing", "technical", "medium", "problem", "", """
Can't pair
Bluetooth problem
{device} not pairing
""", """
{device} won't pair with my {phone}. It shows up for a second and then disappears.
I can't get {device} to pair over Bluetooth with my {phone}. It worked last week.
{device} won't pair with my {phone}
The {device} not connect by bluetooth with my {phone}. I try many times.
""", """
Other Bluetooth devices connect fine.
I reset it as the manual says.
The light keeps blinking blue.
""", "The customer's {device} will not pair over Bluetooth with their {phone}.",
      "Send the {device} reset and pairing steps for the {phone} and arrange a replacement if it still fails."),

    S("firmware_bricked", "technical", "high", "problem", "scope", """
Update broke my device
{device} dead after update
bricked
""", """
My {device} installed firmware {version} last night and now it won't turn on at all.
After the firmware update to {version}, {device} is stuck with a blinking red light.
firmware {version} bricked my {device}
The {device} did the update {version} and now is not working anymore, only red light.
""", """
I did nothing, it updated automatically.
I tried holding the reset button for 30 seconds.
I rely on it every day.
""", "The customer's {device} stopped working after the firmware {version} update.",
      "Check for known issues with firmware {version}, send recovery steps for the {device} and offer a replacement if recovery fails."),

    S("notifications_missing", "technical", "medium", "problem", "scope", """
Not getting notifications
Email notifications stopped
no alerts
""", """
I stopped getting notifications from {app} around {since}. They're enabled in the settings.
Since {since} none of the notification emails arrive. Not in spam either.
no push notifications since {since}, settings are on
From {since} I don't get the notifications anymore. All is activated in the settings.
""", """
My colleagues get them.
I reinstalled the app.
I rely on them for new orders.
""", "The customer has not received notifications[ from {app}] since {since} although they are enabled.",
      "Check notification delivery logs for the customer since {since} and walk them through re-registering the device."),

    S("upload_fails", "technical", "medium", "problem", "blocked deadline scope", """
Upload fails
Can't upload files
upload error
""", """
Uploading a {filesize} PDF fails with "{error}". Smaller files work.
Every time I upload a file (around {filesize}) I get "{error}".
upload fails with "{error}", file is {filesize}
I cannot upload my file of {filesize}, it shows "{error}".
""", """
The limit in your docs says 100 MB.
I tried Chrome and Firefox.
It's a scanned contract.
""", "Uploading a {filesize} file fails for the customer[ with \"{error}\"].",
      "Reproduce the upload of a {filesize} file, check server logs for the failure and share a workaround."),

    S("cosmetic_bug", "technical", "low", "feedback", "", """
Small bug
Display glitch
typo on the site
""", """
Small thing: on the {page} page the buttons overlap on my {phone}. Everything still works.
In dark mode the text on the {page} page is dark grey on black, hard to read.
the {page} page has a typo in the heading, thought you'd want to know
On the {page} page the text is going outside the box on my {phone}. Not big problem.
""", """
I can send a screenshot.
It's been like that for a while.
""", "Minor display issue on the {page} page[ on {phone}].",
      "Log a low-priority UI bug for the {page} page[ on {phone}] and thank the customer."),

    S("translation_error", "technical", "low", "feedback", "", """
Wrong translation
Language mistake in app
""", """
The {language} version of the {page} page has a wrong translation: the button says "{wrong_word}", which doesn't make sense.
In {language}, the {page} screen shows "{wrong_word}" and half the text is still in English.
{language} translation on {page} is broken, says "{wrong_word}"
The translation in {language} is wrong on the {page} page, is written "{wrong_word}".
""", """
I'm a native speaker, happy to help.
It's confusing for my parents who use the app.
""", "The {language} translation on the {page} page is wrong[ (\"{wrong_word}\")].",
      "File a localisation bug for the {language} {page} page and thank the customer for the report."),

    S("browser_blank_page", "technical", "medium", "problem", "", """
Blank page
Doesn't work in {browser}
page won't load
""", """
The {page} page is completely blank in {browser}. It works in other browsers.
In {browser} nothing shows on the {page} page, just white. The console says "{error}".
{page} page blank in {browser}
When I open the {page} page in {browser} it is empty, white page.
""", """
Extensions are disabled.
My company only allows {browser}.
""", "The {page} page renders blank in {browser}[ with \"{error}\"].",
      "Reproduce the blank {page} page in {browser}, file a bug and suggest another browser meanwhile."),

    S("checkout_error", "technical", "high", "problem", "deadline", """
Can't check out
Error at checkout
Payment page error
""", """
I'm trying to place an order but the checkout page shows "{error}" when I click pay. My card was not charged.
Your checkout keeps failing with "{error}" before payment. I can't buy anything.
checkout broken, "{error}" every time
I want to buy but at the payment step is coming error "{error}". Nothing is charged.
""", """
I tried three different cards.
The cart has {count} items.
I'm on {browser}.
""", "The customer cannot complete checkout because the payment page fails with \"{error}\".",
      "Reproduce the \"{error}\" checkout failure, escalate to the web team and help the customer place the order manually."),

    S("security_vulnerability", "technical", "urgent", "problem", "", """
Security vulnerability report
Responsible disclosure
Security issue
""", """
I found a security issue on {domain}: {vuln}. I haven't shared it with anyone and can send details privately.
Responsible disclosure: {domain} is affected by {vuln}. Please tell me who to send the proof of concept to.
security bug on {domain}: {vuln}
I am security researcher. I found on {domain} a problem: {vuln}. Please contact me.
""", """
I'd like to know if you have a bug bounty program.
I'll wait 90 days before publishing anything.
""", "A researcher reports a security vulnerability on {domain}: {vuln}.",
      "Forward the {domain} report to the security team immediately and ask the reporter for the proof of concept privately."),

    S("sees_other_customer_data", "technical", "urgent", "problem", "", """
I can see someone else's data
Privacy problem!!
Wrong account data showing
""", """
When I open my dashboard I see another company's {records}: names, emails, everything. This is not my data.
I logged in and the {records} belong to someone else. I can see their personal details.
i'm seeing someone else's {records} in my account
In my account I see the {records} of other person, not mine. This is a big privacy problem.
""", """
I haven't changed anything.
I took screenshots but have not shared them.
I logged out and in again, same thing.
""", "The customer sees another customer's {records} in their own account, a possible data breach.",
      "Escalate to security as a possible data breach, restrict access to the affected {records} and confirm findings with the customer."),

    S("device_error_code", "technical", "medium", "problem", "", """
Error code {device_code}
{device} shows an error
what does {device_code} mean
""", """
My {device} keeps showing error {device_code} and stops after a few minutes.
{device} flashes {device_code} on the display. The manual doesn't list it.
{device} error {device_code}, what does it mean
My {device} show the error {device_code} on the screen and stop working.
""", """
It's about eight months old.
I unplugged it overnight.
""", "The customer's {device} shows error {device_code} and stops working.",
      "Explain error {device_code} for the {device}, send the troubleshooting steps and arrange a repair if it persists."),

    S("battery_drain", "technical", "medium", "problem", "", """
Battery drain
App drains my battery
{device} battery dies fast
""", """
Since version {version}, {app} drains my battery: {percent}% in an hour without even using it.
My {phone} battery is empty by noon since I updated {app} to {version}. The battery settings show {app} at {percent}%.
{app} eating my battery since {version}, {percent}% in the battery stats
After update {version} the {app} uses {percent}% of battery. Before was normal.
""", """
Location access is set to "while using".
I restarted the phone.
""", "{app} drains the customer's battery[ ({percent}%)] since version {version}.",
      "Collect device details and app logs, check known battery issues in version {version} and share settings that reduce drain."),

    S("report_numbers_wrong", "technical", "medium", "problem", "deadline", """
Report shows wrong numbers
Totals don't add up
Dashboard numbers wrong
""", """
The {report} report shows {count} orders for {month}, but our own records show far more. Something is off with the totals.
Numbers in the {report} report don't match the data: it says {count} for {month}.
{report} report for {month} is wrong, says {count}
The {report} report give {count} for {month}. This is not correct, we have much more.
""", """
The export to CSV has the right numbers.
We present these numbers to our board.
""", "The {report} report shows {count} for {month}, which the customer says is wrong.",
      "Compare the {report} report for {month} with the raw data, file a bug if totals differ and tell the customer the corrected figure."),

    S("duplicate_notifications", "technical", "low", "feedback", "", """
Getting everything three times
duplicate emails
""", """
I get every notification from {app} three times. Not a big deal, just annoying.
All notification emails arrive twice since {since}.
getting each notification 3x from {app}
I receive every notification two or three times since {since}.
""", """
Only on my phone, not the laptop.
""", "The customer receives duplicate notifications[ from {app}].",
      "Check for duplicate device registrations on the customer's account and log a bug if none are found."),

    S("import_fails", "technical", "medium", "problem", "blocked deadline", """
CSV import fails
Import error
can't import my data
""", """
Importing my CSV of {rows} rows fails at row {row} with "{error}". The row looks fine to me.
The import stops with "{error}" at row {row}. The file has {rows} rows.
import fails at row {row}: "{error}"
When I import the file ({rows} lines) it stops at row {row} with "{error}".
""", """
I used your template.
The file is UTF-8.
We're migrating from another tool this week.
""", "A CSV import[ of {rows} rows] fails at row {row}[ with \"{error}\"].",
      "Ask for the CSV file, check row {row} against the import rules and fix or explain the validation error."),

    S("cert_expired", "technical", "urgent", "problem", "", """
Your certificate has expired
SSL warning on your site
""", """
Every browser is showing a "certificate expired" warning on {domain}. Our customers can't reach the portal.
{domain} has an expired SSL certificate since {since}. Nobody in our company can log in to the portal.
cert on {domain} expired, everyone gets a security warning
The certificate of {domain} is expired since {since}, browsers block the site.
""", """
Our API clients are failing too.
It says the certificate expired on {date}.
""", "The SSL certificate on {domain} has expired and users are blocked by browser warnings.",
      "Page the on-call engineer to renew the {domain} certificate immediately and update the status page."),

    S("accessibility_feedback", "technical", "low", "feedback", "", """
Accessibility
Screen reader issue
""", """
I use a screen reader, and the {page} page of your website is hard to navigate: the buttons have no labels.
Your site isn't very accessible: the text on the {page} page is tiny and low contrast.
{page} page doesnt work well with my screen reader
I am visually impaired. The {page} page is difficult for me.
""", """
I'm happy to test improvements.
""", "Customer reports accessibility problems on the {page} page.",
      "Log the accessibility feedback for the {page} page with the web team and thank the customer."),

    S("integration_duplicates", "technical", "medium", "problem", "blocked", """
{integration} integration creating duplicates
Everything shows up twice in {integration}
Duplicate {sync_object} after update
""", """
Since {since}, every one of our {sync_object} is pushed to {integration} twice. Our bookkeeper has found {count} duplicates so far.
The {integration} integration has been creating duplicate {sync_object} since {since}. The data on your side looks right, it's only in {integration}.
{integration} getting every one of our {sync_object} twice since {since}
From {since} the connection with {integration} make every one of the {sync_object} two times.
""", """
I've switched the integration off for now so it doesn't get worse.
We didn't change any settings.
Cleaning this up by hand takes hours.
""", "Since {since} the {integration} integration creates duplicate {sync_object}[ ({count} found so far)].",
      "Reproduce the duplicate {sync_object} sync to {integration}, escalate to the integrations team and help clean up the duplicates."),

    S("invoice_pdf_error", "technical", "medium", "problem", "deadline", """
Can't download invoices
Invoice PDF error
Billing page broken
""", """
When I click "Download PDF" on any invoice in the billing section, I get "{error}". The invoices themselves look correct.
The billing page won't let me download invoice PDFs anymore, it just shows "{error}".
invoice pdf download gives "{error}"
I cannot download the invoices as PDF, there is the error "{error}".
""", """
It worked last month.
I tried Chrome and Safari.
""", "Downloading invoice PDFs from the billing page fails with \"{error}\".",
      "Reproduce the invoice PDF download error, file a bug and email the customer the PDFs they need in the meantime."),
    S("rate_limit", "technical", "medium", "problem", "blocked scope", """
Getting 429 errors
Rate limited for no reason
""", """
We're getting "429 Too Many Requests" at around {rpm} requests per minute, but our plan allows much more.
The API started rate limiting us at {rpm} requests per minute since {since}. Our limit should be higher.
429s at only {rpm} rpm
We get error 429 with only {rpm} requests per minute, our plan allow more.
""", """
Our plan is {plan}.
Nothing changed on our side.
""", "The customer is rate limited with 429 errors at {rpm} requests per minute, below their plan's limit.",
      "Check the rate-limit configuration for the customer's API key and correct it if it does not match their plan."),
]
