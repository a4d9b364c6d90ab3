"""Category-neutral pieces of a ticket: greetings, tones, escalation cues, asides, signatures, threads.

Nothing here may reveal the category on its own, except `ASIDES` (a short aside about ANOTHER
category, the mixed signal) and the escalation cues in `MODS`, which are the text that justifies a
raised priority. Shouting ("URGENT!!!", "ASAP") lives in `FAKE_URGENCY` and never changes a label.
"""

from __future__ import annotations

from adapters.recipes.common import lines

GREETINGS = lines("""
Hi,
Hello,
Hi there,
Dear Support,
Dear Sir or Madam,
Good morning,
Good afternoon,
To whom it may concern,
hey
Hi team,
Hello support team,
Hi {agent},
Dear customer service,
hi all
Hello again,
Hey there,
Greetings,
""")

NON_NATIVE_GREETINGS = lines("""
Dear Sir/Madam,
Hello dear support,
Good day,
Hallo,
Hola,
Bonjour,
Dear team, good morning.
Respected team,
""")

OPENERS = lines("""
I hope you can help me.
I'm writing because I couldn't find an answer on your website.
Sorry to bother you.
I've been a customer for {years} years.
My colleague suggested I contact you directly.
I tried the chat bot first but it didn't understand me.
Quick one.
I hope this is the right address for this.
I'll try to keep this short.
I hope you're well.
First time contacting you, so I hope I'm doing this right.
Writing on behalf of my mother, who doesn't use email.
""")

NON_NATIVE_OPENERS = lines("""
I am writing to you because I have a problem.
I write you for ask help.
Please I need your help.
Excuse me for my English.
I hope you understand my English, it is not my first language.
I contact you because of following issue.
""")

RAMBLE = lines("""
I work nights, so I only noticed this now.
My daughter usually handles this kind of thing but she's away this week.
I'm not very technical, so please bear with me.
Normally everything works fine and I've recommended you to friends.
I'm typing this on my phone, so excuse any typos.
We're a small business, so every hour I spend on this is an hour not spent on customers.
I've read the FAQ but it doesn't seem to cover this.
I spent a good while looking through the help pages before writing.
To give you some background, we switched to you from another provider last year.
I'm going on holiday soon, which is why I'd like to get this sorted.
Honestly it's been a long week already.
My partner thinks I'm doing something wrong, but I don't think so.
""")

# Neutral narrative for long, rambling tickets (placed after the facts).
BACKSTORY = lines("""
I first noticed it on {weekday} evening when I finally sat down to sort out my emails.
I've already spent most of my lunch break on this, which is why I'm a bit short.
Before you ask: yes, I've read the help article, and no, it didn't answer my question.
I'd normally just wait, but I had a bad experience with another company once and I'd rather get ahead of it.
My husband says I should just call, but I prefer having things in writing.
For context, I use this for a small online business I run on the side.
I'm happy to jump on a call if that's easier.
I'm writing from work, so I might not reply straight away.
I've tried to explain this to two of your colleagues already, so apologies if some of this is repeated.
I'd appreciate a reply from a person rather than an automated message.
Just so you have the full picture, I've copied everything I know below.
""")

TRIED = {
    "billing": lines("""
I checked with my bank and they said to contact you.
I looked in the billing section of my account but couldn't work it out.
I've gone through my statements twice.
"""),
    "technical": lines("""
I already tried logging out and back in.
I've restarted everything twice.
I updated to the latest version.
Clearing the cache didn't help.
I tried on a different device as well.
"""),
    "account": lines("""
I looked through the help articles first.
I checked my spam folder just in case.
I tried in a private browser window too.
"""),
    "shipping": lines("""
I checked the tracking page again this morning.
I called the courier but they told me to contact you.
I've looked around the building and asked the concierge.
"""),
    "returns": lines("""
I read the returns page on your site.
I still have all the packaging.
I've kept the receipt.
"""),
    "general": lines("""
I searched your website but couldn't find an answer.
I couldn't find this in the FAQ.
"""),
}

TONES = {
    "angry": lines("""
This is completely unacceptable.
I am extremely disappointed.
Honestly, this is ridiculous.
I'm really fed up with this.
I expect a proper answer this time, not a copy-paste.
Worst experience I've had with any company.
I'm seriously considering taking my business elsewhere.
Third time I'm writing about this. THIRD.
How hard can this be?
Very poor service.
"""),
    "polite": lines("""
Thank you in advance for your help.
I'd really appreciate your help with this.
Sorry for the trouble, and thanks for looking into it.
Many thanks for your time.
I appreciate any help you can give.
Thanks so much, you've always been helpful before.
"""),
    "anxious": lines("""
I'm a bit worried about this.
Please let me know what I should do.
I'm not sure what to do next.
I hope this can be fixed.
"""),
    "calm": lines("""
Let me know if you need anything else from me.
Happy to provide more details if needed.
I can send screenshots if that helps.
Please let me know the next steps.
"""),
}

NON_NATIVE_TONES = lines("""
Please help me fast.
Waiting for your answer.
Thank you very much in advance for your kind help.
Kindly do the needful.
Please revert back at the earliest.
I am waiting your reply.
""")

FAKE_URGENCY = lines("""
Please reply ASAP.
URGENT.
Need an answer quickly please!!
please help asap
This is urgent!!!
Please treat as a priority.
I need a response IMMEDIATELY.
""")

RELAXED = lines("""
No rush.
Whenever you get a chance.
Not urgent at all.
No hurry on this one.
""")

# Escalation cues: (customer text, summary clause). The text is what justifies the priority.
# A clause joins the summary with a comma, never a semicolon: an adapter torn between ending the
# summary and going on with a clause wrote the token `";` (invalid JSON); the tokenizer's `","`
# both ends the value validly and starts a comma clause.
MODS = {
    "deadline": [
        ("I need this sorted by {deadline} because {reason}.", ", needed by {deadline}"),
        ("Please make sure this is done by {deadline}: {reason}.", ", needed by {deadline}"),
        ("It has to be resolved by {deadline}, {reason}.", ", needed by {deadline}"),
        ("I need it before {deadline} at the latest, {reason}.", ", needed by {deadline}"),
    ],
    "blocked": [
        ("I can't do any work until this is fixed.", ", and the customer is blocked from working"),
        ("I'm completely stuck, this is the main tool for my job.", ", and the customer is blocked from working"),
        ("Until this works, I literally can't do my job.", ", and the customer is blocked from working"),
        ("Our team can't move forward on anything until this is sorted.", ", and the customer's team is blocked"),
    ],
    "scope": [
        ("This is happening to everyone in our company, about {audience} users.", ", and it affects their whole company"),
        ("It's not just me: all {audience} of our users are affected and our production system is down.", ", and it affects all their users in production"),
        ("Our customers are affected too, our live shop is basically down because of this.", ", and their live shop is effectively down"),
        ("Every single person in our organisation has the same problem.", ", and it affects their whole organisation"),
    ],
    "threat": [
        ("If this isn't resolved by {weekday}, I'll file a chargeback with my bank.", ", and the customer threatens a chargeback by {weekday}"),
        ("I will dispute the payment with my card company if I don't hear back by tomorrow.", ", and the customer threatens a payment dispute by tomorrow"),
        ("My lawyer will be in touch if this is not resolved by {weekday}.", ", and the customer threatens legal action by {weekday}"),
        ("Unless this is fixed by {weekday} I am reporting you to consumer protection and disputing the charge.", ", and the customer threatens a chargeback and complaint by {weekday}"),
    ],
}

DEADLINE_REASONS = {
    "billing": ["our accountant closes the books then", "the renewal runs after that", "our finance team needs it for the audit"],
    "technical": ["we have a client demo", "our launch is then", "we go live with a customer"],
    "account": ["I have to submit a report", "I'm presenting to a client", "our new hire starts then"],
    "shipping": ["it's for my daughter's birthday", "I'm leaving the country after that", "it's for an event"],
    "returns": ["the return window closes then", "I'm moving house", "I need the right size for a wedding"],
    "general": ["our procurement review ends then", "the budget gets signed off then", "our board meets then"],
}

# Mixed signals: an aside about ANOTHER category. The main problem keeps the label.
ASIDES = {
    "billing": lines("""
Also, could you tell me when my next invoice is due?
PS: is there a discount if we pay yearly?
Also unrelated, my last receipt never arrived by email, but that's not important right now.
(Separate question: can I get invoices in euros?)
"""),
    "technical": lines("""
By the way, the app has been a bit slow lately, but that's not why I'm writing.
PS: the search on your site doesn't find anything when I type an order number. Not a big deal.
Side note, the website logged me out twice while I was writing this.
"""),
    "account": lines("""
Also, can I change the email on my account at some point?
Side note: I'd like to update my phone number too, when you have time.
PS how do I add my husband as a second user?
"""),
    "shipping": lines("""
PS do you ship to Canada?
Also, how long does express delivery usually take?
Unrelated, but your delivery emails always land in my spam.
"""),
    "returns": lines("""
Also, what's your return window again, in case I need it?
PS: can I exchange things in your store, or only by post?
"""),
    "general": lines("""
Otherwise I really like your products.
Btw, a dark mode would be great.
Also love the new website design.
PS, are you hiring? My cousin is looking for a job.
"""),
}

# The same kind of aside, placed BEFORE the main problem.
LEAD_ASIDES = {
    "billing": lines("""
Before anything else: I still haven't received last month's receipt, but that can wait.
Small thing first, can I get my invoices in euros?
"""),
    "technical": lines("""
The app has been a bit sluggish lately, but that's not the main thing.
(Your website keeps logging me out, but never mind that for now.)
"""),
    "account": lines("""
I also need to update my phone number at some point, but that can wait.
Two things, the smaller one first: how do I change my email address?
"""),
    "shipping": lines("""
Two things, the smaller one first: do you ship to Canada?
Unrelated, but your delivery emails always land in my spam.
"""),
    "returns": lines("""
Small question first: how long is your return window?
"""),
    "general": lines("""
First of all, I love your products and have recommended you to friends.
I've been meaning to write to say how much I like the new design, but something came up.
"""),
}

CLOSINGS = lines("""
Thanks,
Thank you,
Thanks in advance,
Regards,
Kind regards,
Best regards,
Best,
Cheers,
Many thanks,
thx
BR,
Sincerely,
Thanks!
All the best,
""")

NON_NATIVE_CLOSINGS = lines("""
Mit freundlichen Grüßen,
Cordialement,
Saludos,
Best regard,
Thanking you,
With kind regard,
Greetings,
""")

# Multi-line pieces below are written with " ¶ " but joined with single newlines.
SIGNATURES = lines("""
{first}
{full}
- {first}
{first} {last_initial}.
{full} ¶ {title} | {company}
{full} | {title} | {company} ¶ T: {phone_number}
{first} ¶ {company}
{full} ¶ {company} ¶ {phone_number}
""")
SIGNATURES = tuple(s.replace("\n\n", "\n") for s in SIGNATURES)

SIGN_NOTES = lines("""
Sent from my iPhone
Sent from my Galaxy
Get Outlook for iOS
Sent from Yahoo Mail on Android
Sent from my iPad
""")

DISCLAIMERS = lines("""
This email and any attachments are confidential and intended solely for the addressee. If you received it in error, please delete it.
Please consider the environment before printing this email.
CONFIDENTIALITY NOTICE: The contents of this email are confidential and may be privileged.
{company} is registered in England and Wales. Registered office: {address}.
""")

GENERIC_SUBJECTS = lines("""
help
Help!!
Question
Problem
Re: Re: your message
(no subject)
Support request
Hello
please help
Issue
need help asap
Inquiry
Complaint
Follow up
quick question
Re: Your support request
Contact form submission
FW: see below
Important
""")

FOLLOW_UPS = lines("""
Any update on this?
Still waiting for a reply.
Following up again.
I already sent you all the details below.
It's been {days_short} days and nothing.
Hello? Is anyone reading these?
Sorry, one more time.
""")

AGENT_REPLIES = lines("""
Thank you for contacting us. Could you please send us more details so we can look into this?
We're sorry to hear about this. Our team is looking into it and will get back to you within 48 hours.
Thanks for your patience. We have passed your request on to the relevant team.
Thanks for reaching out! Could you confirm the email address on your account?
We have received your message and a member of our team will reply as soon as possible.
Thank you for your message. Have you tried the steps in our help centre?
""")

QUOTE_HEADERS = lines("""
On {weekday}, {date} at {time}, Support <{support_domain_addr}> wrote:
-----Original Message----- ¶ From: Customer Care <{support_domain_addr}> ¶ Sent: {weekday} {date} {time} ¶ Subject: Re: {subject}
Am {date} um {time} schrieb Support <{support_domain_addr}>:
Le {date} à {time}, Service client <{support_domain_addr}> a écrit :
On {date}, at {time}, Customer Support <{support_domain_addr}> wrote:
""")
QUOTE_HEADERS = tuple(s.replace("\n\n", "\n") for s in QUOTE_HEADERS)

FORWARD_NOTES = lines("""
Forwarding this from my colleague, can you help?
See below. Can someone look at this please?
FYI, this came in from our team. Please advise.
Hi, passing this on from {other_first}. Thanks.
Can you take a look at the message below?
""")

PHONE_AGENT_OPEN = lines("""
Thank you for calling, my name is {agent}. How can I help you today?
Good morning, you're through to customer support, this is {agent}.
Hi, thanks for holding. What can I do for you?
""")

PHONE_AGENT_PROBE = lines("""
I'm sorry to hear that. Can you tell me a bit more?
Okay, let me have a look. Anything else I should know?
Right, I see. And when did this start?
Thanks. Can I just confirm your name for the record?
""")

PHONE_AGENT_CLOSE = lines("""
Okay, I'll create a ticket for this and someone will get back to you.
Thank you, I've noted everything down. We'll be in touch.
I'll pass this to the right team now.
""")

PHONE_FILLERS = ["um, ", "uh, ", "yeah so ", "so basically ", "right, ", ""]

FORM_TOPICS = ["Other", "General enquiry", "Question", "Feedback", "Help", "Support", "My order", "Technical problem",
               "Billing", "Account"]

LOCALES_NATIVE = ["en-US", "en-GB", "en-AU", "en-CA", "en-IE"]
LOCALES_OTHER = ["de-DE", "fr-FR", "es-ES", "pt-BR", "nl-NL", "pl-PL", "it-IT", "en-IN", "tr-TR", "ja-JP"]

MISSPELLINGS = {
    "receive": "recieve", "received": "recieved", "definitely": "definately", "address": "adress",
    "separate": "seperate", "password": "pasword", "until": "untill", "which": "wich", "because": "becuase",
    "the": "teh", "order": "oder", "please": "pls", "thanks": "thx", "you": "u", "your": "ur",
    "tomorrow": "tomorow", "account": "acount", "already": "allready", "doesn't": "doesnt", "can't": "cant",
    "I'm": "im", "don't": "dont", "subscription": "subscripton", "immediately": "immediatly",
    "business": "buisness", "really": "realy", "delivery": "delivary", "refund": "refnd", "weird": "wierd",
}

NON_NATIVE_SWAPS = [
    (" the ", " "), ("I haven't", "I have not"), ("doesn't work", "is not working"), ("I'm", "I am"),
    ("Could you", "Can you please"), ("I didn't", "I did not"), ("I've", "I have"), ("It's", "It is"),
    ("yesterday", "yesterday evening"), ("I want", "I would like"), ("a lot", "very much"),
]
