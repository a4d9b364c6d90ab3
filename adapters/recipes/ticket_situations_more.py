"""Situation tables for the account, shipping, returns and general categories (see `ticket_situations`)."""

from __future__ import annotations

from adapters.recipes.ticket_situations import S

ACCOUNT = [
    S("reset_email_missing", "account", "medium", "problem", "blocked deadline", """
Password reset not working
cant reset pasword
No reset email
locked out
""", """
I forgot my password and the reset email never arrives. I've requested it {count} times. My login is {email}.
The password reset link says "link expired" every time I click it, even straight away. Account: {email}.
reset email never comes. {email}. checked spam
I cannot enter my account, the mail for new password is not coming. My email is {email}.
""", """
I checked the spam and promotions folders.
I tried from my phone and laptop.
Other emails from you arrive fine.
""", "Customer with login {email} cannot reset their password because the reset email does not arrive or the link fails.",
      "Check mail delivery logs for {email}, send a fresh reset link manually and verify the customer can sign in.", paid_access=True),

    S("locked_out_attempts", "account", "medium", "problem", "blocked deadline", """
Account locked
Too many attempts
can't log in
""", """
My account got locked after too many login attempts. It says to wait, but it's been {hours} hours.
I'm locked out: "account temporarily locked" for {hours} hours now. The username is {username}.
account locked for {hours} hours, username {username}
My account is locked since {hours} hours because I typed wrong password. Please open it.
""", """
I'm sure I have the right password now.
I use a password manager.
""", "Customer's account has been locked after failed login attempts for {hours} hours[ (username {username})].",
      "Verify the customer's identity, unlock the account[ {username}] and send a password reset link.", paid_access=True),

    S("lost_2fa", "account", "medium", "problem", "blocked deadline", """
Lost my phone - 2FA
Can't get my 2FA code
two factor problem
""", """
I got a new phone and lost access to my authenticator app, so I can't log in with 2FA. I don't have the backup codes.
My phone was stolen and it had my 2FA codes. How do I get back into my account {email}?
lost phone, no 2fa codes, cant log in. {email}
I change my phone and now the two factor code is not working. I cannot login to {email}.
""", """
I can verify my identity with ID.
I still know my password.
""", "Customer lost their 2FA device and cannot log in[ to {email}].",
      "Run the identity verification process, then reset 2FA on the customer's account and ask them to re-enrol.", paid_access=True),

    S("change_email", "account", "low", "request", "", """
Change my email address
update login email
new email
""", """
I'm leaving my job and need to switch my login email from {email} to {new_email}.
Can you change the email on my account from {email} to {new_email}? I can't find it in settings.
change my email to {new_email} pls. old one is {email}
I want to change the email of my account, old {email}, new {new_email}.
""", """
I still have access to the old mailbox for a few weeks.
Please keep all my data.
""", "Customer wants to change the login email from {email} to {new_email}.",
      "Verify ownership of {email}, change the login email to {new_email} and confirm through both addresses."),

    S("change_name", "account", "low", "request", "", """
Name change
Update my profile
wrong name on account
""", """
I got married and need to change the name on my profile to {new_name}. The field is greyed out.
Could you update the name on my account to {new_name}? It won't let me edit it.
pls change my name on the account to {new_name}
My name in the profile is wrong, the correct is {new_name}. I cannot change it myself.
""", """
It shows on my certificates, so it matters.
""", "Customer needs the name on their profile changed to {new_name}.",
      "Update the profile name to {new_name} after verifying the account owner, or explain why the field is locked."),

    S("delete_account", "account", "low", "request", "deadline threat", """
Delete my account
Account deletion request
GDPR erasure request
remove my data
""", """
Please delete my account ({email}) and all personal data you hold about me.
I'd like to close my account permanently. The login is {email}. Please confirm when all data is erased.
delete my account {email}
Please remove my account {email} and all my data, I do not use it anymore.
""", """
I've already cancelled the subscription.
I'm making this request under the GDPR.
Please don't send me any more emails.
""", "Customer requests deletion of the account {email} and its personal data.",
      "Verify the request comes from {email}, run the account deletion process and confirm erasure in writing."),

    S("account_takeover", "account", "urgent", "problem", "", """
Someone hacked my account
Account hacked
my account was taken over
Unauthorized access
""", """
Someone got into my account, changed the email to one I don't know and placed an order for {amount}. I can't log in anymore.
I got an email saying my password was changed. It wasn't me. Now I can't log in and I see orders I didn't make.
my account got hacked, password changed, they ordered stuff for {amount}
Somebody enter my account and change the password. I see a new order of {amount}, not mine!
""", """
My old email was {email}.
The order was going to an address in {city}.
I use the same password on other sites, I know.
""", "Customer's account was taken over: credentials changed by someone else[ and an order of {amount} placed].",
      "Lock the account, cancel pending orders[ for {amount}], restore access to the verified owner and escalate to the security team."),

    S("suspicious_login", "account", "high", "problem", "", """
Suspicious login alert
Login from {country}?
Was this me?
""", """
I got an alert about a new login to my account from {country} at {time}. I've never been there. I can still log in.
Your email says someone signed in from {country} at {time}. That wasn't me. Should I be worried?
login alert from {country} at {time}, not me
I receive notification of login from {country} at {time}. It was not me. What I must do?
""", """
I changed my password right away.
Nothing seems changed in the account.
""", "Customer received an alert for an unrecognised login from {country} at {time}.",
      "Sign out all sessions, force a password reset, review recent account activity and recommend enabling 2FA."),

    S("invite_broken", "account", "medium", "problem", "blocked", """
Can't add a team member
Invite link not working
Colleague can't join
""", """
I invited my colleague {email2} to our workspace but the invite link says "invalid or expired".
We're trying to add {email2} as a user but they never get the invite, and resending doesn't help.
invite for {email2} not working
My colleague {email2} cannot join the team, the invitation link give error.
""", """
We still have free seats.
It's our new hire, she starts Monday.
""", "The invite for the customer's colleague {email2} fails or never arrives.",
      "Check the invite for {email2}, resend a fresh one or add the user manually to the workspace."),

    S("remove_ex_employee", "account", "high", "request", "", """
Remove access for former employee
Ex-employee still has access
revoke access
""", """
{other_full} left our company yesterday but still has admin access to our account, and I can't remove them.
Please revoke all access for {other_full}. They no longer work with us and I'm not the owner of the account.
need {other_full} removed from our account asap, they left the company
{other_full} is not working in our company anymore but still has access to our account. Please remove.
""", """
They have the owner role, that's why I can't do it.
We're worried about our customer data.
""", "A former employee, {other_full}, still has admin access to the customer's account.",
      "Verify the requester is an authorised admin, revoke {other_full}'s access and transfer any ownership they hold."),

    S("merge_accounts", "account", "low", "request", "", """
Merge two accounts
I have two accounts
""", """
I accidentally made two accounts, {email} and {new_email}. Can you merge them?
I have one account under {email} and one under {new_email}. I'd like everything in one.
two accounts ({email} and {new_email}) can you merge
I have two account, {email} and {new_email}. Please make one.
""", """
The older one has my order history.
""", "Customer wants to merge the accounts {email} and {new_email}.",
      "Verify both accounts {email} and {new_email} belong to the customer, then merge them or explain what can be transferred."),

    S("sso_broken", "account", "high", "problem", "scope", """
SSO login broken
SAML error
Can't sign in with {idp}
""", """
Sign-in through {idp} fails with "{sso_error}" since we updated our settings this morning.
Since this morning our single sign-on with {idp} returns "{sso_error}". The password login still works for the owner.
sso via {idp} broken: "{sso_error}"
The login with {idp} is giving "{sso_error}" from this morning.
""", """
We rotated our signing certificate yesterday.
We didn't change anything else.
""", "SSO login through {idp} fails with \"{sso_error}\".",
      "Compare the customer's {idp} SSO configuration with the identity provider metadata and walk the admin through the fix."),

    S("verify_email_missing", "account", "medium", "problem", "", """
Verification email not received
Can't verify my account
""", """
I signed up with {email} but the verification email never came, so I can't use my account.
The confirmation email for {email} doesn't arrive. I've clicked resend {count} times.
never got the verification email for {email}
I register with {email} but I did not get the email of confirmation.
""", """
I checked spam.
It's a company email address.
""", "Customer signed up as {email} but never received the verification email.",
      "Check delivery logs for {email}, verify the address manually or resend the verification email."),

    S("account_suspended", "account", "high", "problem", "", """
Account suspended?
Why is my account disabled
Account blocked without reason
""", """
My account was suspended today for a "terms of service violation" and I have no idea why. Everything I need for work is in there.
I can't log in, it says my account has been disabled. I haven't done anything wrong.
account suspended for no reason, need it back
My account is blocked today, the message says I violate the terms. I did nothing wrong.
""", """
I've been a customer for years.
My username is {username}.
""", "Customer's account was suspended for an alleged terms violation[ (username {username})] and they dispute it.",
      "Review the suspension reason with trust and safety and either restore the account or explain the decision."),

    S("transfer_ownership", "account", "medium", "request", "deadline", """
Transfer account ownership
Change account owner
""", """
I'm leaving {company} and need to transfer ownership of our workspace to my colleague {email2}.
Please make {email2} the owner of our company account. I'm the current owner and I'm leaving.
transfer ownership to {email2} please
I leave the company, the new owner of the account must be {email2}.
""", """
My last day is Friday.
{email2} already has an admin account.
""", "Current owner wants workspace ownership transferred to {email2}.",
      "Verify the current owner, transfer workspace ownership to {email2} and confirm with both users."),

    S("unsubscribe_emails", "account", "low", "request", "", """
Unsubscribe
Stop sending me emails
too many emails
""", """
Please take {email} off your marketing emails. The unsubscribe link doesn't do anything.
I keep getting promotional emails at {email} even after unsubscribing twice.
stop emailing {email}
I unsubscribed but I still get your newsletter on {email}.
""", """
I still want order emails, just not the promotions.
""", "Customer keeps receiving marketing emails at {email} despite unsubscribing.",
      "Remove {email} from all marketing lists, check the unsubscribe link and confirm to the customer."),

    S("api_key_leaked", "account", "urgent", "problem", "", """
API key exposed
Leaked credentials
""", """
One of our developers accidentally pushed our API key to a public repository {since}. We need it revoked right now.
Our secret key was exposed in a public GitHub repo. I can't find how to rotate it.
api key leaked on github {since}, need it revoked
Our API key is published by mistake in public code since {since}. Please disable it.
""", """
We see requests we don't recognise in the logs.
The key starts with {key_prefix}.
""", "The customer's API key was exposed in a public repository[ since {since}].",
      "Revoke the exposed API key immediately, issue a new one, and review recent usage of the old key for abuse."),

    S("login_loop", "account", "medium", "problem", "blocked scope", """
Login loop
Can't stay logged in
Keeps logging me out
""", """
When I log in, the page just sends me back to the login screen. Over and over.
I enter my password, it accepts it, and then I'm on the login page again. Happens on {browser} and on my phone.
login just loops back to the login page
After I put my password, it come back to login page again and again.
""", """
I cleared cookies.
It started {since}.
""", "Customer is stuck in a login loop and cannot stay signed in.",
      "Check the customer's sessions and account flags, clear them and have the customer try a private window.", paid_access=True),

    S("deceased_account", "account", "medium", "request", "", """
Account of my late father
Close account of deceased family member
""", """
My father {male_full} passed away last month. I'd like to close his account and stop the subscription.
I'm handling the affairs of my late grandfather, {male_full}. How do I close his account?
my dad {male_full} died, need to close his account
My husband {male_full} is passed away. Please close his account.
""", """
I can send the death certificate.
I don't know his password.
""", "Relative asks to close the account of the deceased customer {male_full}.",
      "Send condolences, request proof of authority, then close {male_full}'s account and stop any billing."),

    S("data_export_request", "account", "low", "request", "deadline", """
Copy of my data
Data access request
""", """
Under the GDPR I'd like a copy of all the personal data you hold on my account {email}.
Can I download all my data from my account {email}? Orders, messages, everything.
need export of all my data, account {email}
Please send me all my personal data of my account {email}.
""", """
This isn't a complaint, I just want a copy.
""", "Customer requests a copy of the personal data held for {email}.",
      "Verify the identity of {email} and start the data export process within the legal deadline."),

    S("reopen_account", "account", "low", "request", "", """
Reopen my account
Reactivate closed account
""", """
I closed my account ({email}) a few months ago. Can I reactivate it and keep my old history?
I'd like to come back. My old account was {email}. Is it still there?
can i reactivate my old account {email}
I closed my account {email} before, now I want to open again.
""", """
I'd like to keep the same username.
""", "Customer wants to reactivate their closed account {email}.",
      "Check whether the account {email} still exists and reactivate it, or explain how to start a new one."),

    S("change_phone", "account", "low", "request", "", """
Update phone number
New phone number
""", """
I have a new mobile number and need to update it on my profile, but it asks for a code sent to the old one.
How do I change the phone number on my account? I don't have the old SIM anymore.
changed my number, cant update it on my profile
I have new phone number, I cannot change in my profile because the code goes to the old number.
""", """
My account email is {email}.
""", "Customer cannot update their phone number because verification goes to the old number.",
      "Verify the customer's identity another way and update the phone number on the profile."),

    S("permission_denied", "account", "medium", "problem", "blocked scope", """
No access to project
Permission denied
can't see the {workspace} workspace
""", """
Since {since} I get "you don't have permission" when I open the {workspace} workspace. I'm supposed to be an admin.
My role was changed somehow and now I can't access {workspace}. Nobody on our side changed it.
lost access to {workspace}, says no permission
I don't have access anymore to {workspace}, it says permission denied.
""", """
My manager can still see it.
""", "Customer has lost permission to access the {workspace} workspace[ since {since}].",
      "Check the audit log for role changes on {workspace}, restore the customer's role if appropriate and confirm with the owner."),
    S("magic_link_broken", "account", "medium", "problem", "blocked deadline", """
Sign-in link doesn't work
Magic link just opens the login page
""", """
The sign-in link you email me just opens the login page again instead of logging me in. Account {email}.
I request a login link for {email}, click it within a minute, and it says "this link is no longer valid".
login link for {email} doesnt work
The link for login that you send to {email} is not working, it goes back to start.
""", """
I tried opening it on the same device I requested it from.
It worked fine until last week.
""", "The email sign-in link for {email} does not log the customer in.",
      "Check sign-in link logs for {email}, send a fresh link or a password reset, and confirm the customer can sign in.", paid_access=True),

    S("teen_age_verification", "account", "medium", "problem", "", """
My son's account is locked
Age verification problem
""", """
My {teen_age}-year-old's account was locked for "age verification" and it asks for an ID he doesn't have. The account is {email}.
Our daughter's account ({email}) got frozen pending age verification. She's {teen_age}. How do we sort this out as parents?
son's account {email} locked for age check, he is {teen_age}
The account of my child ({email}, {teen_age} years) is blocked for age verification. What we must do?
""", """
We set the account up together.
He uses it for school.
""", "A {teen_age}-year-old's account {email} is locked pending age verification.",
      "Explain the parental verification options for {email} and unlock the account once a parent has verified."),

    S("security_questions", "account", "medium", "problem", "blocked", """
Forgot my security answers
Can't pass the security questions
""", """
I'm trying to recover my account but I don't remember the answers to my security questions from years ago. The username is {username}.
Account recovery for {username} keeps asking security questions I can't answer anymore.
dont remember my security answers, username {username}
I forgot the answers of the security questions for {username}. I cannot enter.
""", """
I still have access to the email on file.
""", "Customer cannot recover account {username} because they do not remember their security answers.",
      "Verify the customer for {username} through the email on file or ID, then reset the security questions.", paid_access=True),
]


SHIPPING = [
    S("order_status_question", "shipping", "low", "question", "deadline", """
Order status
When will my order ship?
order {order}
""", """
I ordered the {item} {days_short} days ago (order {order}). Any idea when it will ship?
Just checking on order {order}. It still says processing. No rush, just curious.
when will order {order} ship
Hello, I make order {order} for the {item}. When it will be sent?
""", """
It's a gift.
I chose standard shipping.
""", "Customer asks when order {order} will ship[ ({item})].",
      "Check the fulfilment status of order {order} and give the customer an expected ship date."),

    S("late_order", "shipping", "medium", "problem", "deadline threat", """
Where is my order?
Order {order} late
still not here
Delivery delayed
""", """
My order {order} was supposed to arrive {days} days ago and it still hasn't come. Tracking hasn't moved.
It's been {days} days since the promised delivery date for order {order}. Where is it?
order {order} is {days} days late. nothing.
My order {order} must be arrived {days} days ago. I still wait. Where is it?
""", """
The tracking number is {tracking}.
It's with {carrier}.
I paid for faster delivery.
It's a birthday present.
""", "Order {order} is {days} days past its expected delivery date.",
      "Check the carrier status for order {order}[ ({tracking})] and open an investigation or reship if it is stuck."),

    S("tracking_stuck", "shipping", "medium", "problem", "", """
Tracking not updating
Stuck in transit
tracking hasn't moved
""", """
The tracking for my parcel ({tracking}) has said "{tracking_status}" for {days} days.
{carrier} tracking {tracking} hasn't updated in {days} days. Last status: "{tracking_status}".
tracking {tracking} stuck on "{tracking_status}" for {days} days
The tracking {tracking} is showing "{tracking_status}" since {days} days. Nothing change.
""", """
The order number is {order}.
I called {carrier} and they told me to contact you.
""", "Tracking {tracking} has been stuck on \"{tracking_status}\" for {days} days.",
      "Open a trace with the carrier for {tracking} and update the customer within two business days."),

    S("delivered_not_received", "shipping", "high", "problem", "threat", """
Says delivered but it's not here
Package not received
Delivered??
""", """
Tracking for order {order} says it was delivered {when_past}, but there is nothing here. I asked my neighbours.
My order {order} shows as delivered, but I never got it. I was home all day.
says delivered, nothing here. order {order}
The tracking say delivered for the order {order}, but I did not receive anything.
""", """
The carrier photo shows a door that isn't mine.
It was {carrier}.
I checked the mailbox and around the building.
""", "Order {order} is marked delivered[ {when_past}] but the customer did not receive it.",
      "Open a carrier investigation for order {order}[ with {carrier}] and offer a reshipment or refund if it is not found."),

    S("wrong_address", "shipping", "medium", "request", "deadline", """
Wrong address on order
Change shipping address
typo in address
""", """
I entered the wrong shipping address on order {order}. The right one is {address}. Can you change it before it ships?
I moved last week and order {order} is going to my old address. Please send it to {address}.
wrong address on order {order}, should be {address}
I made mistake in the address for order {order}. The correct is {address}.
""", """
It hasn't shipped yet according to the website.
The old address is in another city.
""", "Customer needs the shipping address on order {order} changed to {address}.",
      "Update the address on order {order} to {address} if it has not shipped, otherwise request a carrier redirect."),

    S("damaged_in_transit", "shipping", "medium", "problem", "threat", """
Arrived damaged
Box was crushed
broken in delivery
""", """
Order {order} arrived today with the box completely crushed and the {item} inside is broken.
The courier left my parcel in the rain and the {item} is damaged. Order {order}.
{item} arrived smashed. order {order}
The {item} of order {order} come broken, the box was all destroyed.
""", """
I took photos of the box.
The driver threw it over the fence.
""", "The {item} from order {order} arrived damaged in transit.",
      "Request photos, file a damage claim with the carrier for order {order} and send a replacement {item}."),

    S("missing_item", "shipping", "medium", "problem", "threat", """
Item missing from parcel
Incomplete order
something missing
""", """
My order {order} arrived but the {item} is missing. The packing slip lists it.
I only got {got} of the {count} items from order {order}. The {item} wasn't in the box.
{item} missing from order {order}
In my order {order} is missing the {item}. The other things are there.
""", """
The box wasn't opened or damaged.
Maybe it comes separately?
""", "The {item} is missing from the customer's delivered order {order}.",
      "Check the packing record for order {order} and ship the missing {item} or confirm it was sent separately."),

    S("shipping_cost_question", "shipping", "low", "question", "", """
Shipping costs
How much is delivery?
Free shipping?
""", """
How much is shipping to {country}? And is there a free shipping threshold?
Do you ship to {country}, and roughly how long does it take?
do you ship to {country}
Hello, what is the price of the delivery to {country}?
""", """
I want to order the {item}.
""", "Customer asks about shipping cost and time to {country}.",
      "Reply with the shipping rates, delivery times and any free-shipping threshold for {country}."),

    S("delivery_before_date", "shipping", "low", "question", "deadline", """
Will it arrive in time?
Delivery before {weekday}?
""", """
If I order the {item} today with express shipping, will it arrive by {weekday}?
I need the {item} before {weekday}. Is that possible with your delivery times?
will the {item} arrive by {weekday} if i order now
If I order today the {item}, it arrive before {weekday}?
""", """
I'm in {city}.
It's for a wedding.
""", "Customer asks whether the {item} can be delivered by {weekday}.",
      "Check stock and carrier cut-off times and tell the customer whether the {item} can arrive by {weekday}."),

    S("lost_parcel", "shipping", "high", "problem", "threat", """
Parcel lost
{carrier} lost my package
Lost in transit
""", """
{carrier} told me my parcel for order {order} is lost. What happens now?
The carrier says the package with order {order} was lost in their depot. I still need the {item}.
{carrier} says order {order} is lost
The delivery company say my package {order} is lost. What do you do now?
""", """
I paid {amount} for it.
They gave me case number {case}.
""", "The carrier has declared the parcel for order {order} lost[ ({carrier})].",
      "Confirm the loss with the carrier, then reship order {order} or refund it, whichever the customer prefers."),

    S("customs_fees", "shipping", "medium", "problem", "threat", """
Unexpected customs fees
Import duties
Asked to pay {amount} on delivery
""", """
The courier wants {amount} in import duties before delivering order {order}. Your site said duties were included.
I was asked to pay {amount} customs for my parcel {order}. Nobody told me about this.
have to pay {amount} customs for order {order}??
For the order {order} the post ask me {amount} for customs. On your site it say no extra costs.
""", """
I'm in {country}.
I haven't paid it yet.
""", "Customer is asked to pay {amount} in import duties to receive order {order}.",
      "Check whether duties were prepaid for order {order} and either reimburse the {amount} or explain the duty policy."),

    S("returned_to_sender", "shipping", "medium", "problem", "", """
Parcel sent back to you?
Returned to sender
""", """
Tracking for order {order} says "returned to sender" but I never got a delivery attempt or a notice.
My parcel {order} is going back to you. The address was correct.
order {order} returned to sender?? address is correct
The tracking of my order {order} say it goes back to the sender. Why?
""", """
My address is {address}.
I was home every day.
""", "Order {order} is being returned to sender without a delivery attempt the customer knows of.",
      "Confirm the address for order {order}, intercept the return with the carrier and reship once it arrives."),

    S("missed_delivery_attempt", "shipping", "medium", "problem", "", """
Driver didn't even ring
Missed delivery but I was home
""", """
{carrier} says they tried to deliver order {order} today, but I was home and nobody rang the bell.
The tracking for {order} says "delivery attempted, nobody home". That is not true, I was here all day.
{carrier} "attempted delivery" on {order}, no they didn't
The courier write "nobody at home" for order {order}, but I was at home!
""", """
Now I have to drive to the depot.
This is the second time.
""", "The carrier[ ({carrier})] reports a failed delivery attempt for order {order} although the customer was home.",
      "File a complaint with the carrier[ ({carrier})] about order {order} and arrange a redelivery or pickup point."),

    S("pickup_point_wrong", "shipping", "medium", "problem", "", """
Delivered to the wrong pickup point
Parcel at the wrong shop
""", """
Order {order} was delivered to a pickup point {km} km away instead of the one I chose.
My parcel ({order}) went to a different parcel shop than the one I selected, it's {km} km from my home.
order {order} went to wrong pickup point, {km} km away
The package {order} is in a wrong pickup shop, {km} km from me. I chose other one.
""", """
I don't have a car.
""", "Order {order} was delivered to the wrong pickup point, {km} km away.",
      "Ask the carrier to move order {order} to the selected pickup point or offer compensation for the trip."),

    S("perishable_delayed", "shipping", "high", "problem", "", """
Food box delayed - it will spoil
Meal kit stuck in transit
""", """
My {food_box} (order {order}) has been stuck at the depot since {since}. It's chilled food, it will be spoiled by tomorrow.
The {food_box} from order {order} didn't arrive and tracking says it's been held since {since}. The ice packs only last 48 hours.
{food_box} stuck since {since}, order {order}, food will go off
My {food_box}, order {order}, is in the depot since {since}. The food will be bad.
""", """
We have nothing planned for dinner this week.
""", "The customer's {food_box} (order {order}) has been held in transit since {since} and will spoil.",
      "Contact the carrier about order {order} today and send a replacement {food_box} or a refund if it cannot arrive fresh."),

    S("bulk_shipment_event", "shipping", "high", "problem", "", """
Our order has not shipped - event on {weekday}
Bulk order {order} still not shipped
""", """
Our order {order} of {units} units still shows "processing". We need them for an event on {weekday}.
We ordered {units} units (order {order}) for a trade show on {weekday}. Nothing has shipped.
order {order}, {units} units, still not shipped, event is {weekday}
Our order {order} ({units} pieces) is not sent yet. We need it for the event on {weekday}.
""", """
We paid for express.
Our account manager is not answering.
""", "Bulk order {order} of {units} units has not shipped and is needed for an event on {weekday}.",
      "Escalate order {order} to the warehouse for same-day dispatch with express shipping to arrive before {weekday}."),

    S("reschedule_delivery", "shipping", "low", "request", "", """
Change delivery date
Can delivery be another day?
""", """
I won't be home on {weekday} when order {order} is scheduled. Can it come a day later?
Could you move the delivery of order {order}? {weekday} doesn't work for me.
can order {order} be delivered after {weekday}
I am not at home on {weekday}. Can the order {order} come other day?
""", """
I'm away for work.
""", "Customer asks to move the delivery of order {order}, currently scheduled for {weekday}.",
      "Reschedule delivery of order {order} with the carrier or send the customer the rescheduling link."),

    S("driver_complaint", "shipping", "low", "feedback", "", """
Complaint about your courier
Delivery driver
""", """
Your driver threw my parcel (order {order}) over the gate today. Nothing broke, but that's not OK.
The courier who delivered order {order} was really rude to my mother.
driver threw my parcel over the fence. order {order}
The delivery man for order {order} leave the package in the street, very bad.
""", """
I have a doorbell camera video.
""", "Customer complains about the courier's conduct when delivering order {order}.",
      "Apologise, pass the complaint about order {order} to the carrier and log it for carrier quality review."),

    S("tracking_invalid", "shipping", "medium", "problem", "", """
Tracking number doesn't work
Invalid tracking
""", """
The tracking number {tracking} you sent for order {order} says "not found" on the {carrier} site.
{carrier} doesn't recognise tracking {tracking}. It's been {days} days since the shipping email.
tracking {tracking} not found on {carrier}
The number {tracking} is not working on {carrier} website. My order is {order}.
""", """
I tried on their app too.
""", "Tracking number {tracking} is not recognised by {carrier}.",
      "Check that {tracking} was handed to {carrier} and send the customer a working tracking link or update."),

    S("not_shipped_yet", "shipping", "medium", "problem", "deadline threat", """
Order still processing
Why hasn't my order shipped?
Paid {days} days ago
""", """
I paid for order {order} {days} days ago and it still says "processing". Your site promised dispatch in 48 hours.
Order {order} hasn't shipped after {days} days. No email, nothing.
order {order} still processing after {days} days??
I paid {days} days ago for the order {order}, still is not sent.
""", """
The {item} showed as in stock.
""", "Order {order} has not shipped {days} days after payment.",
      "Check warehouse status for order {order}, give the customer a dispatch date and offer cancellation if it is delayed."),

    S("subscription_box_missing", "shipping", "medium", "problem", "", """
Monthly box didn't arrive
Where's my {month} box?
""", """
My {month} {sub_box} never arrived. Usually it comes in the first week.
I didn't get my {sub_box} for {month}. Tracking says it left the warehouse on {date}.
{month} {sub_box} never came
The {sub_box} of {month} is not arrived to me.
""", """
The previous ones all came on time.
""", "The customer's {month} {sub_box} has not arrived.",
      "Check the shipment of the {month} {sub_box} and resend it if the carrier cannot locate it."),

    S("delivered_to_neighbour", "shipping", "low", "question", "", """
Left with a neighbour?
Which neighbour has my parcel?
""", """
The card says my parcel for order {order} was left with a neighbour, but it doesn't say which one.
Tracking for {order} says "delivered to neighbour". Which house? I've asked around.
order {order} left with neighbour, which one
They say my order {order} is with a neighbour, but I don't know which.
""", """
I live in a block of {count} flats.
""", "Order {order} was left with an unnamed neighbour and the customer cannot find it.",
      "Ask the carrier for the delivery details of order {order} and tell the customer where it was left."),

    S("po_box", "shipping", "low", "question", "", """
Ship to PO box?
Delivery to a PO Box
""", """
Can you deliver to a PO box? I'd like to order the {item} but I'm rarely home.
Is it possible to ship the {item} to a post office box?
do you deliver to po boxes
Can I send the {item} to a PO box address?
""", """
I'm in {country}.
""", "Customer asks whether an order[ for the {item}] can be shipped to a PO box.",
      "Explain whether PO box delivery is supported and suggest a pickup point if not."),
    S("delivery_instructions", "shipping", "low", "request", "", """
Delivery instructions
Please leave at the back door
""", """
For order {order}, could the driver leave the parcel at the back door? The front bell doesn't work.
Can you add a note to order {order} to leave it with the building concierge?
order {order}: please leave it in the porch
Please for the order {order} tell the driver to leave the package in the garage.
""", """
I work from home most days, but I'm often on calls.
""", "Customer asks for delivery instructions to be added to order {order}.",
      "Add the delivery instructions to order {order} or send the customer the carrier's delivery-preferences link."),

    S("address_incomplete_hold", "shipping", "medium", "problem", "deadline", """
Carrier says my address is incomplete
Parcel on hold - address problem
""", """
{carrier} has put order {order} on hold because the address is "incomplete". It's missing the flat number: it should be {address}.
I got a message that my parcel {order} can't be delivered, address incomplete. Correct address is {address}.
{carrier} holding order {order}, address incomplete. its {address}
The parcel {order} is waiting because address not complete. The right address is {address}.
""", """
The website didn't have a field for the flat number.
""", "Order {order} is on hold with the carrier because of an incomplete address, and the correct address is {address}.",
      "Send the corrected address {address} to the carrier for order {order} and confirm the new delivery date."),

    S("upgrade_to_express", "shipping", "low", "question", "deadline", """
Upgrade to express?
Faster shipping for existing order
""", """
I placed order {order} with standard shipping. Can I still upgrade it to express?
Is it possible to pay extra to get order {order} sent by express?
can i upgrade order {order} to express
I want express delivery for my order {order}, is it possible to change now?
""", """
I'm happy to pay the difference.
""", "Customer asks to upgrade order {order} from standard to express shipping.",
      "Check whether order {order} has been dispatched and upgrade it to express or explain the options."),
]


RETURNS = [
    S("return_how_to", "returns", "low", "question", "", """
How do I return something?
Return process
Returning an unopened item
""", """
How do I return the {item} from order {order}? It's still sealed, I just don't need it.
What's the process to send back an unopened {item}? Order {order}.
how do i return the {item}, order {order}
I want to send back the {item} (order {order}), it is still in the box. How I can do?
""", """
No rush.
It was a gift.
""", "Customer asks how to return an unopened {item} from order {order}.",
      "Send the customer the return instructions and a return label for the {item} on order {order}."),

    S("return_wrong_size", "returns", "medium", "request", "deadline", """
Return - wrong size
Too small
Doesn't fit
""", """
The {garment} I ordered (order {order}) is too small. I'd like to return it for a refund.
The {garment} from order {order} doesn't fit at all, size {size} is more like a size smaller. How do I send it back?
{garment} too big, want to return. order {order}
The {garment} is too small for me, the size {size} is not like in my country. I want give it back. Order {order}.
""", """
I haven't worn it, tags are still on.
I followed your size chart.
""", "Customer wants to return the {garment} from order {order} because it does not fit[ (size {size})].",
      "Send a prepaid return label for the {garment} on order {order} and refund once it is received."),

    S("exchange_size", "returns", "medium", "request", "deadline", """
Exchange for a different size
Swap size
""", """
Can I exchange the {garment} from order {order} for size {size2}? The {size} is too tight.
I'd like to swap the {garment} (order {order}) from size {size} to {size2}.
exchange {garment} {size} for {size2}, order {order}
Please change the {garment} size {size} to {size2}. Order {order}.
""", """
I'd like the same colour.
""", "Customer wants to exchange the {garment} from order {order} from size {size} to {size2}.",
      "Reserve size {size2} of the {garment}, send an exchange return label for order {order} and ship the new size."),

    S("wrong_item", "returns", "medium", "problem", "deadline", """
Wrong item received
You sent the wrong thing
Not what I ordered
""", """
I ordered the {item} but received {wrong_item} instead. Order {order}.
Order {order} contained {wrong_item}, not the {item} I paid for.
got {wrong_item} instead of the {item}. order {order}
In my order {order} is {wrong_item}, but I ordered the {item}.
""", """
The packing slip says {item}.
I need the right one soon.
""", "Customer received {wrong_item} instead of the {item} on order {order}.",
      "Send a return label for the {wrong_item} and ship the correct {item} for order {order} right away."),

    S("defective_return", "returns", "medium", "request", "", """
Faulty product - want to send it back
Defective {item}
Broken after {days_short} days
""", """
The {item} from order {order} stopped working after {days_short} days. I'd like to return it for a replacement.
My {item} (order {order}) is defective: it {defect}. I want to send it back.
{item} broken already, {defect}. order {order}. want a new one
The {item} of order {order} is not working, it {defect}. I want to return it.
""", """
I used it as the manual says.
I still have the original box.
""", "The {item} from order {order} is defective and the customer wants to return it for a replacement.",
      "Issue a return label for the defective {item} on order {order} and ship a replacement once the return is scanned."),

    S("refund_after_return_missing", "returns", "medium", "problem", "threat", """
Return received but no refund
Still no refund for my return
Where is my refund for the return
""", """
I sent back the {item} from order {order} {days} days ago. Tracking shows you received it, but I haven't been refunded.
You got my return for order {order} {days} days ago and I still haven't got my money back.
returned order {order} {days} days ago, still no refund
I return the {item} (order {order}) {days} days before. You received but no money back.
""", """
The return tracking number is {tracking}.
It was {amount}.
""", "The customer's return for order {order} arrived {days} days ago but has not been refunded.",
      "Check the return scan for order {order}, process the refund[ of {amount}] and send the customer confirmation."),

    S("return_window_expired", "returns", "low", "question", "", """
Can I still return this?
Return after 30 days
""", """
I bought the {item} {days_long} days ago (order {order}). I know it's past 30 days, but can I still return it? It's unused.
Is there any way to return the {item} from order {order}? It's been {days_long} days.
can i still return the {item}? {days_long} days, order {order}
I buy the {item} {days_long} days ago. Is it possible to return still? Order {order}.
""", """
I was in hospital for a few weeks.
""", "Customer asks to return the {item} from order {order} after {days_long} days, outside the return window.",
      "Explain the return policy for the {item} and decide whether to allow a goodwill return for order {order}."),

    S("return_label_broken", "returns", "medium", "problem", "deadline", """
Return label not working
Post office won't accept my return
QR code invalid
""", """
The post office couldn't scan the return label for order {order}. They said the QR code is invalid.
The return label you emailed for order {order} doesn't work. The drop-off point rejected it.
return label for {order} doesnt work
The label for return of order {order} is not accepted in the post office.
""", """
I tried two different locations.
My return window ends soon.
""", "The return label for order {order} is rejected at drop-off.",
      "Generate a new return label for order {order}, send it to the customer and extend the return window if needed."),

    S("return_shipping_cost", "returns", "low", "question", "", """
Who pays return shipping?
Free returns?
""", """
If I return the {item} from order {order}, do I pay for the return shipping?
Are returns free? I want to send the {item} back (order {order}).
are returns free? order {order}
I have to pay the shipping for return the {item}? Order {order}.
""", """
It's a heavy item.
""", "Customer asks who pays return shipping[ for the {item}] on order {order}.",
      "Explain the return shipping policy[ for the {item}] and send a return label if returns are free."),

    S("return_gift", "returns", "low", "question", "", """
Returning a gift
Gift without receipt
""", """
I received the {item} as a gift and would like to exchange it. I don't have the receipt or order number.
Can I return a gift? It's the {item}, I don't know the order number.
returning a gift ({item}), no receipt
I got the {item} as gift. I want to return, but no receipt.
""", """
The person who bought it used their own account.
""", "Customer wants to return or exchange a gifted {item} without a receipt.",
      "Explain the gift return process for the {item} and offer store credit or an exchange."),

    S("rma_bulk_defective", "returns", "high", "request", "", """
RMA for defective units
Batch of {units} faulty units
""", """
{units} units of the {device} from order {order} fail on startup. We need an RMA to return them.
We need to return {units} defective {device} units from order {order}. They show the same fault.
rma needed: {units} {device} units from {order} faulty
We have {units} pieces of the {device} from order {order} that are broken. We need to return them.
""", """
The serial numbers are in the attached spreadsheet.
We're deploying the rest at client sites.
""", "Business customer needs an RMA to return {units} defective {device} units from order {order}.",
      "Issue an RMA for {units} {device} units from order {order}, arrange pickup and ship replacements."),

    S("warranty_return", "returns", "medium", "request", "", """
Warranty claim
Broken within warranty
""", """
My {device} stopped working after {months} months. It's under warranty, how do I send it back?
I'd like to return my {device} under warranty. It's {months} months old and won't charge.
{device} died after {months} months, warranty return?
My {device} is broken after {months} months, I want to send it for the warranty.
""", """
I bought it on your website.
""", "Customer wants to return a {device} under warranty after {months} months.",
      "Confirm warranty status for the {device}, send a warranty return label and explain repair or replacement."),

    S("return_rejected", "returns", "medium", "problem", "threat", """
Return refused
You rejected my return
""", """
You rejected my return of the {item} (order {order}) saying it was used. It was not used, I only tried it on.
Why was my return for order {order} refused? The {item} was in perfect condition.
return for order {order} rejected?? {item} was unused
You refused my return of the {item}, order {order}, but it was new.
""", """
I have photos of it before I sent it.
""", "The return of the {item} from order {order} was rejected as used, which the customer disputes.",
      "Review the inspection notes for order {order}, look at the customer's photos and reverse the rejection if justified."),

    S("return_pickup_missed", "returns", "medium", "problem", "", """
Return pickup didn't happen
Courier never collected my return
""", """
The courier was supposed to collect my return for order {order} on {weekday}, but nobody came.
I waited home all {weekday} for the return pickup of the {item} (order {order}). No one came.
return pickup for {order} never came
Nobody come to take the return of order {order} on {weekday}.
""", """
It's a large box.
""", "The scheduled return pickup for order {order} did not happen[ on {weekday}].",
      "Rebook the return pickup for order {order} with the carrier and confirm the new slot with the customer."),

    S("cancel_return", "returns", "low", "request", "", """
Cancel my return
Keeping the item after all
""", """
I started a return for the {item} on order {order}, but I've decided to keep it. Can you cancel it?
Please cancel the return for order {order}. I'm keeping the {item}.
cancel return on order {order}, keeping it
I don't want to return the {item} anymore, order {order}.
""", """
I haven't shipped it.
""", "Customer wants to cancel the return[ for the {item}] on order {order}.",
      "Cancel the open return on order {order} and confirm that no refund will be issued."),

    S("store_credit_instead", "returns", "medium", "problem", "threat", """
I wanted a refund, not store credit
Return refunded as voucher
""", """
I returned the {item} (order {order}) and got store credit. I asked for a refund to my card.
My return for order {order} was processed as a voucher, but I chose money back.
got store credit for my return on {order}, wanted a refund
For my return of order {order} you give me voucher, but I want my money.
""", """
I don't plan to shop again soon.
""", "Customer's return on order {order} was processed as store credit instead of a refund.",
      "Convert the store credit for order {order} into a refund to the original payment method."),

    S("restocking_fee", "returns", "medium", "problem", "threat", """
Restocking fee?
Why was a fee deducted from my return
""", """
You deducted a {amount} restocking fee from my return refund on order {order}. Nobody mentioned that fee.
My refund for order {order} was {amount} less than I paid. Is this a restocking fee?
why {amount} restocking fee on order {order}
You take {amount} from my refund of order {order}. Why?
""", """
The item was unopened.
""", "Customer disputes a {amount} restocking fee deducted from the refund on order {order}.",
      "Check the restocking fee policy for order {order} and refund the {amount} if it did not apply."),

    S("return_large_item", "returns", "medium", "request", "", """
Return of large item
How do I return a {furniture}?
""", """
I want to return the {furniture} from order {order}. It doesn't fit the room. It's too big for a normal parcel.
How do I send back the {furniture} (order {order})? It's fully assembled and very heavy.
returning the {furniture}, order {order}, its huge
I want to return the {furniture} of order {order}. It is very big, how to send?
""", """
I still have the original packaging.
""", "Customer wants to return the {furniture} from order {order}, which needs a freight pickup.",
      "Arrange a freight pickup for the {furniture} on order {order} and explain any return fees."),

    S("return_status", "returns", "low", "question", "", """
Did you get my return?
Return status
""", """
I sent back the {item} from order {order} last week. Has it arrived yet?
Can you confirm you received my return for order {order}? Tracking {tracking}.
did my return arrive? order {order}
I sent the return of order {order} last week. You have it?
""", """
I haven't got an email yet.
""", "Customer asks whether the return for order {order} has arrived.",
      "Check the return tracking for order {order} and tell the customer when the refund will be processed."),

    S("exchange_out_of_stock", "returns", "medium", "request", "", """
Exchange size sold out
Can't exchange - out of stock
""", """
I wanted to exchange the {garment} from order {order} for size {size2}, but it's sold out. Can you hold one when it's back?
The exchange page says size {size2} of the {garment} is out of stock. What are my options? Order {order}.
want {size2} in the {garment}, sold out. order {order}
I want to change the {garment} to size {size2}, but it is not available. Order {order}.
""", """
Otherwise I'll take a refund.
""", "Customer wants to exchange the {garment} from order {order} for size {size2}, which is out of stock.",
      "Offer a back-in-stock hold on size {size2} or a refund for the {garment} on order {order}."),

    S("return_missing_part", "returns", "low", "question", "", """
Forgot something in my return
Return sent without the charger
""", """
I returned the {item} from order {order} but forgot to include the charger. Can I send it separately?
My return for order {order} went out without the {item}'s cable. What should I do?
forgot the cable in my return, order {order}
I send back the {item} but I forget the charger inside. Order {order}.
""", """
I don't want the refund to be reduced.
""", "Customer's return[ of the {item}] on order {order} was sent without an accessory.",
      "Tell the customer how to send the missing accessory for order {order} and note it on the return."),

    S("return_opened_hygiene", "returns", "low", "question", "", """
Can I return opened earbuds?
Return opened item
""", """
Can I return the {item} if I've opened the box and tried it once? Order {order}.
I opened the {item} from order {order}. Is it still returnable?
opened the {item}, can i return it? order {order}
I open the box of the {item}, it is possible still to return? Order {order}.
""", """
It just doesn't suit me.
""", "Customer asks whether an opened {item} from order {order} can still be returned.",
      "Explain the return policy for opened items and send a return label for order {order} if eligible."),
    S("exchange_colour", "returns", "medium", "request", "", """
Exchange for another colour
Wrong colour - can I swap?
""", """
The {garment} from order {order} looks much brighter than in the photos. Can I exchange it for the {colour} one?
I'd like to swap the {garment} (order {order}) for the {colour} version, same size.
swap {garment} for {colour}, order {order}
I want to change the colour of the {garment} to {colour}. Order {order}.
""", """
It hasn't been worn.
""", "Customer wants to exchange the {garment} from order {order} for the {colour} version.",
      "Check stock of the {colour} {garment}, send an exchange label for order {order} and ship the new colour."),

    S("return_from_abroad", "returns", "low", "question", "", """
Returning from outside the EU
International return
""", """
I live in {country} now. How do I return the {item} from order {order}? Do your free return labels work here?
Can I send back the {item} (order {order}) from {country}? Who pays the postage?
returning order {order} from {country}, how
I want to return the {item} of order {order} from {country}. How to do?
""", """
I'd rather not pay customs twice.
""", "Customer asks how to return order {order}[ (the {item})] from {country}.",
      "Explain the international return process from {country} for order {order} and any customs paperwork."),

    S("partial_refund_return", "returns", "medium", "problem", "threat", """
Only part of my return was refunded
Refund missing for one item
""", """
I returned two items from order {order} but only got a refund for one. The {item} hasn't been refunded.
You refunded the first item from my return on order {order}, but not the {item}. Both were in the same box.
order {order}: only 1 of 2 returned items refunded, {item} missing
From my return of order {order} you refund only one item. The {item} is not refunded.
""", """
The return tracking shows one parcel, delivered.
""", "Customer's return for order {order} was only partly refunded, and the {item} has not been refunded.",
      "Check the return inspection for order {order} and refund the {item} if it was received."),
]


GENERAL = [
    S("feature_request", "general", "low", "feedback", "", """
Feature request
Suggestion
would be nice if...
idea
""", """
It would be great if {app} had {wish}. I'd use it every day.
Feature request: {wish}. Is that on the roadmap?
pls add {wish}
My idea: you can add {wish}? It would help a lot.
""", """
Otherwise I love the product.
Your competitor has it.
""", "Customer requests a new feature: {wish}.",
      "Thank the customer and log the request for {wish} with the product team."),

    S("praise", "general", "low", "feedback", "", """
Thank you!
Just wanted to say thanks
Great service
""", """
Just wanted to say thank you to {agent}, who sorted out my problem in minutes yesterday.
I've been using {app} for {years} years and it keeps getting better. Thanks to the whole team.
love the new update, great work
I am very happy with your service. {agent} was very kind.
""", """
No need to reply.
""", "Customer sends praise[ for {agent}][ after {years} years of use].",
      "Thank the customer for the kind words[ and pass the feedback on to {agent}]."),

    S("partnership", "general", "low", "question", "deadline", """
Partnership opportunity
Collaboration proposal
Reseller inquiry
""", """
I run {company} and we'd like to discuss a reseller partnership in {country}. Who's the right person to talk to?
We're interested in integrating with your platform and co-marketing. I'm at {company}.
partnership idea from {company}, who do i talk to
I am from {company}, we want to sell your products in {country}. Who can I contact?
""", """
We have about {audience} customers.
Happy to jump on a call.
""", "{company} proposes a partnership[ in {country}].",
      "Forward the {company} partnership inquiry to the partnerships team and reply with their contact."),

    S("press_inquiry", "general", "low", "question", "deadline", """
Press inquiry
Interview request
Media question
""", """
I'm a journalist writing about {topic} and would love a comment from your company.
I write for {outlet} and am working on a story about {topic}. Could someone answer a few questions?
journalist at {outlet}, need a quote on {topic}
I am reporter of {outlet}. I want to ask some questions about {topic}.
""", """
A short email answer is fine.
""", "A journalist[ from {outlet}] asks for comment on {topic}.",
      "Forward the press request about {topic} to the communications team."),

    S("job_application", "general", "low", "question", "", """
Job application
Are you hiring?
Internship
""", """
Are you hiring for {role} positions? I'd love to send my CV.
I'd like to apply for a {role} role. I couldn't find a careers page.
any openings for a {role}?
I'm a student in {city} and I'm looking for a {role} internship. Do you take interns?
I am looking for job as {role}. Do you have a place?
""", """
I've been a customer for years.
""", "Person asks about {role} job openings.",
      "Point the person to the careers page and forward their interest in {role} roles to HR."),

    S("sustainability_question", "general", "low", "question", "", """
Question about your materials
Sustainability
""", """
Where are your {product_line} made, and are the materials recycled?
Could you tell me about the sustainability of your {product_line}? Packaging, materials, factories?
are your {product_line} made ethically?
I want to know where you produce the {product_line}.
""", """
I'm trying to buy more responsibly.
""", "Customer asks about the origin and sustainability of the {product_line}.",
      "Share the sustainability and sourcing information for the {product_line}."),

    S("product_question", "general", "low", "question", "", """
Question about a product
Before I buy
""", """
Is the {item} {spec}? The description doesn't say.
Quick question before I order: is the {item} {spec}?
is the {item} {spec}
I want to know if the {item} is {spec}.
""", """
I'm choosing between two models.
""", "Customer asks whether the {item} is {spec}.",
      "Answer whether the {item} is {spec} and link the product page."),

    S("how_to_feature", "general", "low", "question", "", """
How do I...?
Question
how to
""", """
How do I {howto} in {app}? I couldn't find it in the help centre.
Is there a way to {howto}? I've looked everywhere in the settings.
how do i {howto}
Please explain me how to {howto} in {app}.
""", """
I'm new to the app.
""", "Customer asks how to {howto}[ in {app}].",
      "Send the help-centre steps for how to {howto}."),

    S("store_hours", "general", "low", "question", "", """
Opening hours
Store in {city}?
""", """
What are the opening hours of your {city} store on {weekday}?
Do you have a shop in {city}? I'd like to see the {item} in person.
store hours in {city} on {weekday}?
Is your shop in {city} open on {weekday}?
""", """
I'm visiting for the weekend.
""", "Customer asks about the store in {city}.",
      "Reply with the {city} store's address and opening hours."),

    S("bulk_quote", "general", "low", "question", "deadline", """
Bulk order quote
Wholesale pricing
""", """
We'd like a quote for {units} units of the {item} for our staff. Is there a volume discount?
Can you send us wholesale pricing for {units} pieces of the {item}?
quote for {units} x {item}?
We need price for {units} pieces of {item} for our company.
""", """
We'd need them delivered to {city}.
We're {company}.
""", "Customer requests a volume quote for {units} units of the {item}.",
      "Forward to the sales team to prepare a quote for {units} units of the {item}."),

    S("vendor_security_review", "general", "medium", "request", "deadline", """
Security questionnaire
Vendor review documents
SOC 2 report request
""", """
Our security team is doing the annual vendor review. Could you send your {compliance_doc} and fill in our questionnaire?
We need your {compliance_doc} for our vendor assessment. Who can help?
need your {compliance_doc} for vendor review
For our vendor review we need your {compliance_doc}. Please send.
""", """
We can sign an NDA.
Our contract renewal depends on it.
""", "Customer requests the {compliance_doc} for their vendor security review.",
      "Send the {compliance_doc} under NDA and route the questionnaire to the security team."),

    S("staff_feedback", "general", "low", "feedback", "", """
Feedback about your store
Bad experience in store
""", """
I visited your {city} store on {weekday} and the staff member was quite rude when I asked a simple question.
I wanted to let you know the service in the {city} shop on {weekday} was disappointing.
staff in {city} store were rude on {weekday}
In your shop in {city} on {weekday} the seller was not friendly with me.
""", """
I'm usually very happy with you.
""", "Customer reports a poor in-store experience at the {city} store on {weekday}.",
      "Apologise and pass the feedback about the {city} store to the store manager."),

    S("packaging_feedback", "general", "low", "feedback", "", """
Too much packaging
Packaging suggestion
""", """
My small {item} came in a huge box full of plastic. Could you use less packaging?
Love the {item}, but the packaging was excessive. A smaller box would do.
so much plastic for one {item}
The {item} came with too much plastic. Please use less.
""", """
""", "Customer feels the packaging for the {item} was excessive.",
      "Thank the customer and forward the packaging feedback to the fulfilment team."),

    S("legal_notice", "general", "urgent", "problem", "", """
Trademark infringement notice
Legal notice
Cease and desist
""", """
We represent {company}. Your product name infringes our client's registered trademark. Unless you respond by {weekday}, we will file for an injunction.
This is formal notice that your use of {company}'s copyrighted images must stop. We expect a reply by {weekday} before we start proceedings.
legal notice from {company}'s lawyers: respond by {weekday} or we go to court
We are lawyers of {company}. You use their trademark. Answer before {weekday} or we go to court.
""", """
Please forward this to your legal department.
""", "Lawyers for {company} allege infringement and threaten legal action unless there is a reply by {weekday}.",
      "Forward the notice from {company} to the legal team today so they can respond before {weekday}."),

    S("sponsorship", "general", "low", "question", "", """
Sponsorship request
Charity event
""", """
I'm organising a charity {charity_event} in {city} and wondered if you'd donate a prize or sponsor us.
Would you consider sponsoring our {charity_event} in {city}? It raises money for the local hospital.
sponsor our {charity_event}?
We organise a {charity_event} in {city}. Can you sponsor us?
""", """
About {audience} people will attend.
""", "Customer asks for sponsorship of a {charity_event}[ in {city}].",
      "Forward the sponsorship request for the {charity_event} to the marketing team."),

    S("affiliate", "general", "low", "question", "", """
Affiliate program?
Influencer collaboration
""", """
I run a blog about {topic} with {audience} monthly readers. Do you have an affiliate program?
Do you work with creators? I review {topic} products.
affiliate program? i write about {topic}
I have blog about {topic}. You have affiliate program?
""", """
""", "A creator who covers {topic} asks about an affiliate program.",
      "Send the affiliate program details and forward the contact to marketing."),

    S("restock_question", "general", "low", "question", "", """
When is it back in stock?
Restock?
""", """
When will the {item} be back in stock? I've been waiting for weeks.
Is the {item} being restocked, or is it discontinued?
{item} back in stock when?
When you have again the {item}?
""", """
Can I get an email when it's back?
""", "Customer asks when the {item} will be back in stock.",
      "Check the restock date for the {item} and sign the customer up for a back-in-stock alert."),

    S("compatibility_question", "general", "low", "question", "", """
Compatibility question
Does it work with my {phone}?
""", """
Does the {device} work with my {phone}? I want to be sure before buying.
Is the {device} compatible with {phone}?
does {device} work with {phone}
The {device} is working with {phone}?
""", """
""", "Customer asks whether the {device} is compatible with their {phone}.",
      "Confirm {device} compatibility with the {phone} and link the compatibility list."),

    S("privacy_question", "general", "low", "question", "", """
Where is my data stored?
Privacy question
""", """
Where do you store customer data, and do you share it with third parties?
Before we sign up: is your data hosted in the EU, and do you have a DPA?
where is my data stored
I want to know where you keep my data and who can see it.
""", """
We're a small clinic, so this matters.
""", "Customer asks where their data is stored and whether it is shared.",
      "Send the privacy policy, data hosting locations and the DPA."),

    S("vague_hello", "general", "low", "question", "", """
hi
hello
question

""", """
hello? anyone there
Hi, I have a question. Can someone get back to me?
hi
Hello, I need some help please.
""", """
""", "Customer sent a greeting without describing a request.",
      "Reply asking what the customer needs help with."),

    S("recommendation", "general", "low", "question", "", """
Which one should I buy?
Advice please
""", """
I'm trying to decide between the {item} and the {item2}. Which would you recommend for a beginner?
Could you help me choose between the {item} and the {item2}?
{item} or {item2}?
What is better for me, {item} or {item2}?
""", """
My budget is around {amount}.
""", "Customer asks for advice choosing between the {item} and the {item2}.",
      "Compare the {item} and the {item2} for the customer's use and recommend one."),

    S("company_question", "general", "low", "question", "", """
About your company
Quick question
""", """
Are you the same company that used to be called {company}? I had an account there years ago.
Is {company} part of your group now?
are you related to {company}?
Your company is the same as {company}?
""", """
""", "Customer asks whether the company is related to {company}.",
      "Explain the company's relationship to {company}."),

    S("event_question", "general", "low", "question", "", """
Webinar
Question about your event
""", """
Will the webinar on {weekday} be recorded? I can't attend live.
I registered for your {event} on {weekday} but never got a link.
is the {weekday} webinar recorded
I am registered for the {event} on {weekday} but no link came.
""", """
""", "Customer asks about access to the event on {weekday}[ ({event})].",
      "Send the customer the event link or recording details for the {weekday} session."),

    S("loyalty_program", "general", "low", "question", "", """
How do loyalty points work?
Rewards programme question
""", """
How do the rewards points work? I have {points} points and no idea what they're worth.
Do my {points} loyalty points expire? I can't find the rules anywhere.
what can i do with {points} points
I have {points} points in my account. How can I use them?
""", """
I shop with you most months.
""", "Customer asks how to use or keep their {points} loyalty points.",
      "Explain the loyalty programme rules, point value and expiry for the customer's {points} points."),

    S("ad_feedback", "general", "low", "feedback", "", """
Your advert
Misleading ad
""", """
Your latest advert on {ad_place} says "{ad_claim}", but that isn't what I found on your site. That's misleading.
I found your {ad_place} advert claiming "{ad_claim}" a bit much, honestly. Just some feedback.
that {ad_place} ad saying "{ad_claim}" is misleading
Your advertisement in {ad_place} say "{ad_claim}". I think this is not correct.
""", """
I'm not asking for anything, I just think you should know.
""", "Customer says the {ad_place} advert claiming \"{ad_claim}\" is misleading.",
      "Thank the customer and forward the feedback on the {ad_place} advert to the marketing team."),

    S("site_usability_feedback", "general", "low", "feedback", "", """
Your new website
Website feedback
the redesign
""", """
Honestly the redesigned site is a step backwards. The {page} page is buried somewhere and my search filters vanish whenever I hit back.
Since the redesign it takes me ages to find anything. The {page} page used to be one click away.
new site is confusing, where did the {page} page go
Your new website is difficult for me. I cannot find the {page} page anymore.
""", """
I've been shopping with you for {years} years.
It's not broken, just frustrating.
""", "Customer finds the redesigned website harder to use[, especially finding the {page} page].",
      "Thank the customer and pass the website usability feedback to the web team."),

    S("dpa_signature", "general", "medium", "request", "deadline", """
DPA signature
Data processing agreement
""", """
Our legal team needs a signed data processing agreement before we can roll out to {seats} users. Can you countersign ours?
Could you sign our DPA? Procurement won't approve the {seats}-seat purchase without it.
need a signed dpa before we buy {seats} seats
We need the DPA signed before buying {seats} licences.
""", """
I've attached our template.
""", "Prospective customer needs a signed DPA before buying {seats} seats.",
      "Send the standard DPA or route the customer's template to legal for signature."),
]
