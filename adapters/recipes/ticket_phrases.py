"""Phrase tables and slot values for the ticket generator: concrete facts and the pieces of a message.

Slot makers return realistic concrete values (order numbers in many shop formats, amounts in several
currencies, carrier-specific tracking numbers, real-looking error messages) so the adapter learns to
copy facts from the ticket into the summary instead of memorising a few values. Style pieces
(greetings, tones, signatures, quoted replies) are deliberately category-neutral: only the situation
carries the label.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from adapters.recipes.common import Slots, lines

# ----------------------------------------------------------------------------------------------
# Slot values
# ----------------------------------------------------------------------------------------------

MALE_FIRST = ("James", "Tom", "Lukas", "Chen", "Daniel", "Kwame", "Hiroshi", "Mehmet", "Rahul", "Pierre", "Sven",
              "Mohammed", "Dmitri", "Tunde", "Marco", "Kenji", "Arjun", "Pedro", "Oskar", "Samuel", "Patrick", "Noah")

FIRST = lines("""
Maria
James
Priya
Tom
Aisha
Lukas
Sofia
Chen
Fatima
Daniel
Olga
Kwame
Emma
Hiroshi
Lucía
Mehmet
Anna
Rahul
Chloe
Pierre
Nia
Sven
Ana
Mohammed
Grace
Dmitri
Isabella
Tunde
Julia
Marco
Ines
Kenji
Zoe
Arjun
Hannah
Pedro
Leila
Oskar
Bea
Samuel
Yuki
Ewa
Patrick
Amara
Noah
Camille
Ravi
Helen
""")

LAST = lines("""
Lopez
Smith
Raman
Becker
Okafor
Novak
Rossi
Wei
Haddad
Murphy
Ivanova
Mensah
Dubois
Tanaka
Fernández
Yilmaz
Kowalski
Sharma
Martin
Nguyen
Andersson
Silva
Khan
O'Brien
Petrov
García
Adeyemi
Schmidt
Moreau
Jensen
Costa
Hughes
Kim
Mehta
Walsh
Bianchi
Sato
Baker
Ali
Larsen
""")

EMAIL_DOMAINS = lines("""
gmail.com
outlook.com
yahoo.com
hotmail.co.uk
icloud.com
gmx.de
web.de
orange.fr
proton.me
libero.it
""")

COMPANIES = lines("""
Brightline Logistics
Kessler & Vogt GmbH
Maple Street Bakery
Okafor Dental Group
Tanaka Design Studio
Northgate Legal LLP
Bluefin Analytics
Greenleaf Landscaping
Harbour Yoga
Ridgeway Builders Ltd
Solaris Energy
Pinecrest Veterinary
Atlas Freight BV
Studio Nord
Meridian Health Partners
Copperpot Catering
Lumen Architects
Fjord Outdoor AS
Castellan Insurance
Vantage Property Group
Redwood Tutoring
Kiwi Kids Nursery
Orbit Media
Hollis & Grant Accountants
""")

TITLES = lines("""
Office Manager
Operations Lead
IT Administrator
Finance Director
Head of Customer Success
Founder
CTO
Purchasing Manager
Marketing Coordinator
Practice Manager
""")

CITIES = lines("""
Leeds
Berlin
Lyon
Austin
Toronto
Melbourne
Rotterdam
Milan
Dublin
Kraków
Porto
Denver
Manchester
Gothenburg
Valencia
Hamburg
Seattle
Auckland
Cape Town
Bristol
""")

STREETS = lines("""
Elm Street
Station Road
Maple Avenue
Kingsway
Oak Lane
Harbour Road
Church Street
Park Road
Mill Lane
High Street
""")

COUNTRIES = lines("""
Canada
Germany
Ireland
Australia
Norway
Japan
Mexico
Switzerland
Poland
New Zealand
the US
Spain
""")

PLANS = lines("""
Pro
Premium
Team
Business
Plus
Family
Basic
Starter
Growth
Unlimited
""")

MONTHS = lines("""
January
February
March
April
May
June
July
August
September
October
November
December
""")
MONTH_ABBR = [m[:3] for m in MONTHS]

WEEKDAYS = lines("""
Monday
Tuesday
Wednesday
Thursday
Friday
Saturday
""")

SINCE = lines("""
yesterday
this morning
last night
Monday
the weekend
about 9:40 UTC
around 2pm today
8:15 this morning
the last update
Tuesday afternoon
""")

WHEN_PAST = lines("""
yesterday
yesterday at 2:14pm
on Monday
two days ago
this morning
on Saturday
""")

APPS = lines("""
the iOS app
the Android app
the web dashboard
the desktop app
the Mac app
your mobile app
the Windows app
the tablet app
""")

FEATURES = lines("""
CSV export
the calendar sync
the search
photo upload
the report builder
invoice templates
the PDF download
recurring tasks
the barcode scanner
bulk editing
the timesheet export
two-way sync
the print view
shared playlists
the booking widget
""")

ERRORS = lines("""
Something went wrong (code 17)
500 Internal Server Error
502 Bad Gateway
ERR_CONNECTION_RESET
Request failed with status code 503
TypeError: Cannot read properties of undefined (reading 'id')
Unexpected error, please try again later
Error 0x80070005
Session expired, please reload
An unknown error occurred (E-1042)
NetworkError when attempting to fetch resource
Could not process file
Timeout while waiting for server response
Invalid response from server
""")

HTTP_ERRORS = lines("""
500 Internal Server Error
502 Bad Gateway
503 Service Unavailable
504 Gateway Timeout
""")

PAYMENT_ERRORS = lines("""
card_declined
do_not_honor
Payment could not be processed
insufficient_funds
authentication_required
""")

PHONES = lines("""
iPhone 13
iPhone 15 Pro
Pixel 7
Samsung Galaxy S22
Galaxy A54
iPad Air
OnePlus 11
Xiaomi Redmi Note 12
Moto G84
iPhone SE
""")

OSES = lines("""
iOS 17.4
iOS 16.7
Android 14
Android 13
Windows 11
macOS Sonoma
""")

BROWSERS = lines("""
Chrome
Safari
Firefox
Edge
Brave
""")

INTEGRATIONS = lines("""
Google Calendar
Outlook
Slack
Shopify
Zapier
Salesforce
QuickBooks
HubSpot
Xero
Google Drive
""")

DEVICES = lines("""
Nimbus smart thermostat
HX-2 router
Pulse Buds Pro
LX-40 label printer
Orbit robot vacuum
Lumo video doorbell
Aero air purifier
Trek e-bike display
Halo baby monitor
Brew One coffee machine
Stride fitness watch
Vela smart lock
""")

ROUTERS = lines("""
FritzBox 7590
TP-Link Archer AX55
Netgear Nighthawk
BT Smart Hub
Vodafone Station
""")

PAGES = lines("""
checkout
account settings
order history
pricing
product
login
search results
booking
""")

LANGUAGES = lines("""
German
French
Spanish
Italian
Dutch
Polish
Portuguese
""")

WRONG_WORDS = lines("""
Kasse bezahlen Warenkorb
Sauvegarder le panier ici
Confirmar el confirmar
Carrello vuoto pieno
Opslaan opslaan
""")

DOMAINS = lines("""
portal.brightcart.com
app.tasknest.io
shop.fernhollow.co.uk
my.voltabank-demo.com
dashboard.queuely.com
api.parcelpoint.net
""")

VULNS = lines("""
a stored XSS in the profile name field
an open S3 bucket with customer invoices
password reset tokens that never expire
an IDOR that lets me view other users' orders by changing the ID in the URL
an admin panel reachable without login
""")

RECORDS = lines("""
customer list
invoices
orders
patient appointments
project files
contacts
""")

DEVICE_CODES = lines("""
E-04
E17
F3
ERR 22
code 0x1A
E-101
""")

REPORTS = lines("""
monthly sales
revenue
inventory
payroll summary
conversion
""")

IDPS = lines("""
Okta
Azure AD
Google Workspace
OneLogin
Entra ID
""")

SSO_ERRORS = lines("""
Invalid SAML response
Signature validation failed
User not assigned to this application
AADSTS50011: reply URL mismatch
""")

WORKSPACES = lines("""
Marketing
Finance 2025
Client Projects
Operations
Design Team
""")

# Groups of similar products: a recommendation compares two from the same group.
ITEM_GROUPS = [
    lines("standing desk\noffice chair\ndesk lamp\nmechanical keyboard"),
    lines("espresso machine\nblender\nair fryer\ncast iron pan\nset of kitchen knives"),
    lines("wireless headphones\nbluetooth speaker\nsmart watch\nphone case\nelectric toothbrush"),
    lines("yoga mat\nhiking backpack\ncamping stove\nkids' bike helmet"),
    lines("rain jacket\nrunning shoes\nwinter boots"),
    lines("duvet set\nwool blanket\nceramic vase"),
    lines("baby stroller\ncar seat"),
]
ITEMS = tuple(item for group in ITEM_GROUPS for item in group)

GARMENTS = lines("""
jeans
linen shirt
rain jacket
hiking boots
wool coat
running shoes
summer dress
hoodie
chinos
sneakers
ski trousers
bra
""")

SIZES = lines("""
S
M
L
XL
38
40
42
44
UK 7
US 9
EU 41
""")

FURNITURE = lines("""
sofa
wardrobe
dining table
bed frame
bookcase
""")

DEFECTS = lines("""
won't charge anymore
makes a loud grinding noise
turns off by itself after a few minutes
has a cracked housing
won't hold a charge
leaks water
""")

FOOD_BOXES = lines("""
meal kit
fresh fish box
veggie box
cheese subscription box
""")

SUB_BOXES = lines("""
coffee subscription box
book box
beauty box
snack box
wine club delivery
""")

CARRIERS = lines("""
UPS
FedEx
DHL
USPS
Royal Mail
DPD
Evri
PostNL
Canada Post
GLS
Australia Post
Colissimo
""")

TRACKING_STATUSES = lines("""
Label created
In transit
Arrived at sorting facility
Held at customs
Out for delivery
Exception: address issue
""")

WISHES = lines("""
a dark mode
an export to Excel
offline mode
a way to share lists with family
keyboard shortcuts
a Linux version
recurring invoices
a widget for the home screen
two-factor login with a hardware key
bulk discounts for schools
""")

AGENTS = lines("""
Sarah
Miguel
Jonas
Aiko
Ben
Leonie
Omar
""")

TOPICS = lines("""
remote work tools
sustainable fashion
small business software
the cost of home energy
running gear
smart home security
""")

OUTLETS = lines("""
the Evening Standard
TechRadar
a local newspaper
a trade magazine
a podcast
""")

ROLES = lines("""
software developer
customer support
warehouse
graphic design
marketing intern
""")

PRODUCT_LINES = lines("""
jackets
shoes
bags
t-shirts
bedding
""")

SPECS = lines("""
waterproof
machine washable
dishwasher safe
suitable for children under 3
compatible with induction hobs
available in a wide fit
""")

HOWTOS = lines("""
add a second user to my project
change the date format to European
set up recurring reminders
print a monthly report
share a folder with a client
turn off the weekly summary email
""")

COMPLIANCE = lines("""
SOC 2 Type II report
ISO 27001 certificate
penetration test summary
completed security questionnaire
""")

EVENTS = lines("""
fun run
webinar
school fair
community festival
workshop
""")

PROMOS = lines("""
SPRING20
WELCOME10
FREESHIP
VIP15
SUMMER25
THANKYOU
NEWS15
BF2024
""")

DESCRIPTORS = lines("""
PADDLE.NET* APP
SQ *BRIGHTCART
STRIPE* TASKNEST
PAYPAL *FERNHOLLOW
QUEUELY*PRO
""")

PRICES = [4.99, 9.99, 12.0, 14.99, 19.99, 24.0, 29.0, 39.99, 49.0, 59.99, 79.0, 99.0, 119.88, 149.0, 199.0, 249.0]


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _letters(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(n))


def _money(rng: random.Random, s: Slots, value: float) -> str:
    style = s["_currency"]
    text = f"{value:,.2f}" if value < 1000 else f"{value:,.0f}"
    if style == "usd":
        return f"${text}"
    if style == "usd_code":
        return f"{text} USD"
    if style == "eur":
        return f"€{text}"
    if style == "eur_suffix":
        return text.replace(",", " ").replace(".", ",") + " EUR"
    if style == "gbp":
        return f"£{text}"
    return f"{text} CAD"


def _order(rng: random.Random, s: Slots) -> str:
    return rng.choice([
        lambda: "#" + _digits(rng, 6),
        lambda: "A-" + _digits(rng, 6),
        lambda: "ORD-" + _digits(rng, 5),
        lambda: f"{_digits(rng, 2)}-{_digits(rng, 4)}-{_letters(rng, 2)}",
        lambda: "W" + _digits(rng, 8),
        lambda: "SO" + _digits(rng, 6),
        lambda: f"#{_digits(rng, 5)}-{_digits(rng, 2)}",
        lambda: _digits(rng, 7),
    ])()


def _date(rng: random.Random, s: Slots) -> str:
    month, day = rng.randrange(12), rng.randint(1, 28)
    return rng.choice([
        f"{MONTHS[month]} {day}", f"{day} {MONTHS[month]}", f"{month + 1:02d}/{day:02d}",
        f"{day:02d}.{month + 1:02d}.", f"{MONTH_ABBR[month]} {day}", f"the {day}{_ordinal(day)}",
    ])


def _ordinal(day: int) -> str:
    return "th" if 11 <= day <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def _tracking(rng: random.Random, s: Slots) -> str:
    carrier = s["carrier"]
    if carrier == "UPS":
        return "1Z" + _letters(rng, 3) + _digits(rng, 13)
    if carrier in ("Royal Mail", "Canada Post", "Australia Post", "Colissimo"):
        return _letters(rng, 2) + _digits(rng, 9) + rng.choice(["GB", "CA", "AU", "FR"])
    if carrier == "USPS":
        return "9400 " + " ".join(_digits(rng, 4) for _ in range(4)) + " " + _digits(rng, 2)
    if carrier == "DHL":
        return "JD01" + _digits(rng, 16)
    return _digits(rng, rng.choice([12, 14]))


def _person_email(first: str, last: str, rng: random.Random) -> str:
    local = rng.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}{_digits(rng, 2)}", f"{last}.{first}"])
    return (local.lower().replace("'", "").replace(" ", "") + "@" + rng.choice(EMAIL_DOMAINS)
            .replace("í", "i")).translate(str.maketrans("áéíóúñçãö", "aeiouncao"))


def _company_email(rng: random.Random, s: Slots) -> str:
    domain = s["company"].lower().split()[0].replace("&", "") + ".com"
    return f"{rng.choice(FIRST).lower()}@{domain}".translate(str.maketrans("áéíóúñçãö", "aeiouncao"))


def _pick(pool: tuple[str, ...] | list[str]) -> Callable[[random.Random, Slots], str]:
    return lambda rng, s: rng.choice(pool)


def _other(key: str, pool: tuple[str, ...]) -> Callable[[random.Random, Slots], str]:
    """A value from `pool` different from slot `key` (a second item, a different size)."""
    return lambda rng, s: rng.choice([v for v in pool if v != s[key]])


SLOT_MAKERS: dict[str, Callable[[random.Random, Slots], str]] = {
    "_currency": lambda rng, s: rng.choice(["usd", "usd", "usd_code", "eur", "eur", "eur_suffix", "gbp", "gbp", "cad"]),
    "first": _pick(FIRST),
    "last": _pick(LAST),
    "full": lambda rng, s: f"{s['first']} {s['last']}",
    "new_name": lambda rng, s: f"{s['first']} {rng.choice([n for n in LAST if n != s['last']])}",
    "male_full": lambda rng, s: f"{rng.choice(MALE_FIRST)} {s['last']}",
    "charity_event": _pick(["fun run", "school fair", "community festival", "charity gala", "football tournament"]),
    "other_full": lambda rng, s: f"{rng.choice([n for n in FIRST if n != s['first']])} {rng.choice(LAST)}",
    "email": lambda rng, s: _person_email(s["first"], s["last"], rng),
    "new_email": lambda rng, s: _person_email(s["first"], s["last"], rng),
    "email2": _company_email,
    "username": lambda rng, s: (s["first"][:4] + rng.choice(["_", ".", ""]) + _digits(rng, rng.choice([2, 3]))).lower(),
    "company": _pick(COMPANIES),
    "title": _pick(TITLES),
    "phone_number": lambda rng, s: rng.choice([f"+44 7700 {_digits(rng, 6)}", f"+49 151 {_digits(rng, 8)}",
                                               f"+1 (512) 555-{_digits(rng, 4)}", f"+33 6 {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)}",
                                               f"+31 6 {_digits(rng, 8)}", f"0{_digits(rng, 3)} {_digits(rng, 3)} {_digits(rng, 4)}"]),
    "city": _pick(CITIES),
    "address": lambda rng, s: rng.choice([f"{rng.randint(2, 190)} {rng.choice(STREETS)}, {s['city']}",
                                          f"{rng.choice(STREETS)} {rng.randint(2, 90)}, {s['city']}",
                                          f"Flat {rng.randint(1, 30)}, {rng.randint(2, 120)} {rng.choice(STREETS)}, {s['city']}"]),
    "country": _pick(COUNTRIES),
    "plan": _pick(PLANS),
    "amount": lambda rng, s: _money(rng, s, rng.choice(PRICES)),
    "big_amount": lambda rng, s: _money(rng, s, rng.choice([4800, 7200, 12500, 18000, 24000, 36000, 48000])),
    "date": _date,
    "month": _pick(MONTHS),
    "weekday": _pick(WEEKDAYS),
    "since": _pick(SINCE),
    "when_past": _pick(WHEN_PAST),
    "time": lambda rng, s: rng.choice([f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}", f"{rng.randint(1, 11)}:{rng.randint(0, 59):02d} {rng.choice(['am', 'pm'])}"]),
    "invoice": lambda rng, s: rng.choice(["INV-" + _digits(rng, 4), f"INV-{rng.choice(['2024', '2025'])}-{_digits(rng, 5)}",
                                          f"{rng.choice(['2024', '2025'])}-{_digits(rng, 4)}", "F" + _digits(rng, 6), "#" + _digits(rng, 5)]),
    "last4": lambda rng, s: _digits(rng, 4),
    "case": lambda rng, s: rng.choice(["CS-" + _digits(rng, 5), "#" + _digits(rng, 6), "TKT-" + _digits(rng, 4)]),
    "days": lambda rng, s: str(rng.randint(4, 21)),
    "days_short": lambda rng, s: str(rng.randint(2, 5)),
    "days_long": lambda rng, s: str(rng.randint(35, 90)),
    "hours": lambda rng, s: str(rng.randint(2, 30)),
    "months": lambda rng, s: str(rng.randint(3, 22)),
    "years": lambda rng, s: str(rng.randint(2, 9)),
    "count": lambda rng, s: str(rng.randint(3, 9)),
    "got": lambda rng, s: str(rng.randint(1, int(s["count"]) - 1)),
    "audience": lambda rng, s: rng.choice(["300", "1,200", "4,000", "15,000", "800", "20k", "150"]),
    "rows": lambda rng, s: str(rng.randint(150, 9000)),
    "row": lambda rng, s: str(rng.randint(2, int(s["rows"]))),
    "units": lambda rng, s: str(rng.choice([25, 40, 60, 120, 200, 350, 500])),
    "seats": lambda rng, s: str(rng.randint(3, 120)),
    "seats_billed": lambda rng, s: str(int(s["seats"]) + rng.randint(5, 80)),
    "km": lambda rng, s: str(rng.randint(6, 40)),
    "percent": lambda rng, s: str(rng.randint(3, 40)),
    "seconds": lambda rng, s: str(rng.randint(8, 45)),
    "rpm": lambda rng, s: str(rng.choice([40, 60, 90, 120, 200, 300])),
    "vat": lambda rng, s: rng.choice(["DE" + _digits(rng, 9), "FR" + _digits(rng, 11), "NL" + _digits(rng, 9) + "B01",
                                      "GB" + _digits(rng, 9), "IE" + _digits(rng, 7) + "V", "ESB" + _digits(rng, 8)]),
    "order": _order,
    "promo": _pick(PROMOS),
    "descriptor": _pick(DESCRIPTORS),
    "bankref": lambda rng, s: rng.choice(["TRX", "REF", "BT"]) + _digits(rng, 8),
    "giftcard": lambda rng, s: f"GC-{_digits(rng, 4)}-{_digits(rng, 4)}",
    "contract": lambda rng, s: f"OF-{rng.choice(['2024', '2025'])}-{_digits(rng, 3)}",
    "app": _pick(APPS),
    "feature": _pick(FEATURES),
    "version": lambda rng, s: f"{rng.randint(2, 9)}.{rng.randint(0, 24)}.{rng.randint(0, 9)}",
    "phone": _pick(PHONES),
    "os": _pick(OSES),
    "browser": _pick(BROWSERS),
    "error": _pick(ERRORS),
    "http_error": _pick(HTTP_ERRORS),
    "error_pay": _pick(PAYMENT_ERRORS),
    "request_id": lambda rng, s: "req_" + "".join(rng.choice("0123456789abcdef") for _ in range(10)),
    "integration": _pick(INTEGRATIONS),
    "url": lambda rng, s: f"https://hooks.{s['company'].lower().split()[0].replace('&', '')}.com/{rng.choice(['events', 'webhooks/in', 'api/hook'])}",
    "device": _pick(DEVICES),
    "router": _pick(ROUTERS),
    "filesize": lambda rng, s: rng.choice(["6.5 MB", "12 MB", "18 MB", "24 MB", "48 MB", "2.1 MB"]),
    "page": _pick(PAGES),
    "language": _pick(LANGUAGES),
    "wrong_word": _pick(WRONG_WORDS),
    "domain": _pick(DOMAINS),
    "vuln": _pick(VULNS),
    "records": _pick(RECORDS),
    "device_code": _pick(DEVICE_CODES),
    "report": _pick(REPORTS),
    "idp": _pick(IDPS),
    "sso_error": _pick(SSO_ERRORS),
    "key_prefix": lambda rng, s: rng.choice(["sk_live_", "lg_prod_", "api_"]) + _digits(rng, 4),
    "workspace": _pick(WORKSPACES),
    "item": _pick(ITEMS),
    "item2": lambda rng, s: rng.choice([i for g in ITEM_GROUPS if s["item"] in g for i in g if i != s["item"]]),
    "wrong_item": lambda rng, s: rng.choice(["a " + i for i in ITEMS if i != s["item"] and i[0] not in "aeiou"]),
    "garment": _pick(GARMENTS),
    "size": _pick(SIZES),
    "size2": _other("size", SIZES),
    "points": lambda rng, s: str(rng.choice([120, 350, 800, 1250, 2400, 5000])),
    "ad_place": _pick(["Instagram", "YouTube", "the radio", "a bus stop poster", "TV"]),
    "ad_claim": _pick(["everything 50% off", "free delivery on all orders", "the UK's lowest prices", "cancel any time, no fees"]),
    "sync_object": _pick(["invoices", "orders", "contacts", "payments", "time entries"]),
    "colour": _pick(["black", "navy", "olive", "grey", "red", "white", "beige"]),
    "teen_age": lambda rng, s: str(rng.randint(13, 17)),
    "furniture": _pick(FURNITURE),
    "defect": _pick(DEFECTS),
    "food_box": _pick(FOOD_BOXES),
    "sub_box": _pick(SUB_BOXES),
    "carrier": _pick(CARRIERS),
    "tracking": _tracking,
    "tracking_status": _pick(TRACKING_STATUSES),
    "wish": _pick(WISHES),
    "agent": _pick(AGENTS),
    "topic": _pick(TOPICS),
    "outlet": _pick(OUTLETS),
    "role": _pick(ROLES),
    "product_line": _pick(PRODUCT_LINES),
    "spec": _pick(SPECS),
    "howto": _pick(HOWTOS),
    "compliance_doc": _pick(COMPLIANCE),
    "event": _pick(EVENTS),
    "deadline": _pick(["tomorrow", "tomorrow morning", "the end of today", "tomorrow at noon", "end of day tomorrow"]),
    "support_domain": _pick(["support.brightcart.com", "help.tasknest.io", "care.fernhollow.co.uk", "support.queuely.com"]),
}
