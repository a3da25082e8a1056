"""The fixed world the demo data lives in: a fashion brand's catalogue, stores, pages and errors.

Everything here is constant data; randomness lives in `records.py`. Prices are in GBP.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Product:
    product_id: str
    product_name: str
    category: str
    price: float


# (category, [(name, price)]). Prices follow a high-street fashion brand.
_CATALOGUE_SOURCE: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = (
    (
        "Dresses",
        (
            ("Linen Wrap Dress", 59.99),
            ("Floral Midi Dress", 49.99),
            ("Satin Slip Dress", 69.99),
            ("Knitted Jumper Dress", 45.00),
            ("Broderie Sundress", 39.99),
            ("Pleated Maxi Dress", 79.99),
            ("Little Black Dress", 55.00),
            ("Shirt Dress", 42.50),
            ("Tiered Smock Dress", 35.99),
            ("Velvet Party Dress", 89.00),
            ("Jersey T-Shirt Dress", 22.99),
            ("Sequin Mini Dress", 95.00),
        ),
    ),
    (
        "Tops",
        (
            ("Organic Cotton T-Shirt", 12.99),
            ("Striped Breton Top", 24.99),
            ("Silk Cami", 39.99),
            ("Oversized Poplin Shirt", 34.99),
            ("Ribbed Tank Top", 9.99),
            ("Linen Blouse", 32.00),
            ("Puff Sleeve Blouse", 29.99),
            ("Graphic Print Tee", 16.99),
            ("Long Sleeve Henley", 19.99),
            ("Cropped Cardigan", 36.00),
            ("Merino Crew Jumper", 65.00),
            ("Cable Knit Jumper", 49.99),
            ("Cashmere Roll Neck", 129.00),
            ("Oxford Shirt", 35.00),
        ),
    ),
    (
        "Jeans",
        (
            ("Straight Leg Jeans", 49.99),
            ("Skinny Jeans", 39.99),
            ("Mom Jeans", 45.00),
            ("Wide Leg Jeans", 55.00),
            ("Bootcut Jeans", 47.50),
            ("Slim Tapered Jeans", 52.00),
            ("Relaxed Fit Jeans", 44.99),
            ("Black Skinny Jeans", 39.99),
            ("Selvedge Raw Denim Jeans", 110.00),
            ("Denim Shorts", 27.99),
        ),
    ),
    (
        "Trousers",
        (
            ("Tailored Wide Trousers", 45.00),
            ("Linen Drawstring Trousers", 35.99),
            ("Chinos", 39.99),
            ("Cargo Trousers", 42.00),
            ("Pleated Trousers", 49.99),
            ("Jersey Joggers", 25.99),
            ("Leather-Look Leggings", 29.99),
            ("Culottes", 32.50),
        ),
    ),
    (
        "Skirts",
        (
            ("Pleated Midi Skirt", 39.99),
            ("Denim Mini Skirt", 27.99),
            ("Satin Slip Skirt", 35.00),
            ("A-Line Wool Skirt", 55.00),
            ("Tiered Maxi Skirt", 42.00),
            ("Pencil Skirt", 32.99),
        ),
    ),
    (
        "Outerwear",
        (
            ("Wool Blend Coat", 149.00),
            ("Classic Trench Coat", 129.00),
            ("Quilted Puffer Jacket", 89.99),
            ("Denim Jacket", 59.99),
            ("Leather Biker Jacket", 199.00),
            ("Lightweight Rain Mac", 69.99),
            ("Teddy Borg Jacket", 75.00),
            ("Tailored Blazer", 95.00),
            ("Parka", 119.00),
            ("Gilet", 49.99),
        ),
    ),
    (
        "Shoes",
        (
            ("White Leather Trainers", 69.99),
            ("Chelsea Boots", 99.00),
            ("Ballet Flats", 35.99),
            ("Block Heel Sandals", 45.00),
            ("Leather Loafers", 79.00),
            ("Knee High Boots", 139.00),
            ("Espadrilles", 29.99),
            ("Running Trainers", 85.00),
            ("Slingback Heels", 59.99),
            ("Chunky Lace-Up Boots", 109.00),
            ("Slider Sandals", 19.99),
        ),
    ),
    (
        "Accessories",
        (
            ("Leather Belt", 25.00),
            ("Silk Scarf", 29.99),
            ("Wool Beanie", 15.99),
            ("Straw Sun Hat", 22.00),
            ("Gold Hoop Earrings", 18.99),
            ("Layered Necklace", 21.99),
            ("Leather Gloves", 35.00),
            ("Aviator Sunglasses", 39.99),
            ("Hair Claw Clip Set", 8.99),
            ("Cotton Socks 5-Pack", 12.00),
        ),
    ),
    (
        "Bags",
        (
            ("Leather Tote Bag", 89.00),
            ("Crossbody Bag", 49.99),
            ("Canvas Shopper", 19.99),
            ("Quilted Shoulder Bag", 65.00),
            ("Mini Bucket Bag", 45.00),
            ("Backpack", 55.00),
            ("Clutch Bag", 35.99),
        ),
    ),
    (
        "Knitwear",
        (
            ("Chunky Knit Cardigan", 59.99),
            ("Fair Isle Jumper", 54.99),
            ("Alpaca Blend Jumper", 79.00),
            ("Knitted Vest", 32.00),
            ("Ribbed Knit Polo", 38.00),
        ),
    ),
    (
        "Activewear",
        (
            ("High Waist Leggings", 34.99),
            ("Sports Bra", 24.99),
            ("Running Shorts", 22.00),
            ("Zip Training Top", 39.99),
            ("Yoga Hoodie", 44.99),
        ),
    ),
    (
        "Swimwear",
        (
            ("Ruched Swimsuit", 39.99),
            ("Bikini Set", 34.99),
            ("Swim Shorts", 25.00),
            ("Beach Kaftan", 29.99),
        ),
    ),
    (
        "Nightwear",
        (
            ("Cotton Pyjama Set", 35.00),
            ("Satin Pyjama Set", 45.00),
            ("Waffle Robe", 39.99),
            ("Fleece Slippers", 17.99),
        ),
    ),
)


def _build_catalogue() -> tuple[Product, ...]:
    products = []
    for category, items in _CATALOGUE_SOURCE:
        for name, price in items:
            products.append(
                Product(
                    product_id=f"P{len(products) + 1:04d}",
                    product_name=name,
                    category=category,
                    price=price,
                )
            )
    return tuple(products)


PRODUCTS: tuple[Product, ...] = _build_catalogue()
CATEGORIES: tuple[str, ...] = tuple(category for category, _ in _CATALOGUE_SOURCE)

# How popular each category is, relative to each other (Tops and Dresses sell most).
CATEGORY_POPULARITY: dict[str, float] = {
    "Dresses": 14,
    "Tops": 20,
    "Jeans": 12,
    "Trousers": 8,
    "Skirts": 5,
    "Outerwear": 7,
    "Shoes": 10,
    "Accessories": 9,
    "Bags": 5,
    "Knitwear": 5,
    "Activewear": 4,
    "Swimwear": 2,
    "Nightwear": 3,
}

# (city, postcode prefixes, weight) - where customers live. Stores are in a few of them.
CITIES: tuple[tuple[str, tuple[str, ...], float], ...] = (
    ("London", ("N1", "E2", "SE1", "SW4", "W11", "NW3", "E8", "SW11"), 30),
    ("Manchester", ("M1", "M4", "M20", "M14"), 10),
    ("Birmingham", ("B1", "B15", "B13"), 8),
    ("Leeds", ("LS1", "LS6", "LS8"), 6),
    ("Glasgow", ("G1", "G12", "G41"), 6),
    ("Edinburgh", ("EH1", "EH3", "EH9"), 5),
    ("Bristol", ("BS1", "BS6", "BS8"), 5),
    ("Liverpool", ("L1", "L8", "L17"), 5),
    ("Newcastle", ("NE1", "NE2", "NE6"), 4),
    ("Brighton", ("BN1", "BN2"), 4),
    ("Cardiff", ("CF10", "CF11", "CF24"), 3),
    ("Nottingham", ("NG1", "NG7"), 3),
    ("Sheffield", ("S1", "S10", "S11"), 3),
    ("Oxford", ("OX1", "OX2", "OX4"), 2),
    ("Cambridge", ("CB1", "CB2", "CB4"), 2),
    ("York", ("YO1", "YO10"), 2),
    ("Belfast", ("BT1", "BT7", "BT9"), 2),
)
COUNTRY = "United Kingdom"

STORES: tuple[dict[str, str], ...] = (
    {"store_id": "S001", "name": "Oxford Street Flagship", "city": "London"},
    {"store_id": "S002", "name": "Covent Garden", "city": "London"},
    {"store_id": "S003", "name": "Westfield Stratford", "city": "London"},
    {"store_id": "S004", "name": "Manchester Arndale", "city": "Manchester"},
    {"store_id": "S005", "name": "Birmingham Bullring", "city": "Birmingham"},
    {"store_id": "S006", "name": "Glasgow Buchanan Street", "city": "Glasgow"},
    {"store_id": "S007", "name": "Edinburgh Princes Street", "city": "Edinburgh"},
    {"store_id": "S008", "name": "Bristol Cabot Circus", "city": "Bristol"},
    {"store_id": "S009", "name": "Leeds Trinity", "city": "Leeds"},
)

STREET_NAMES: tuple[str, ...] = (
    "High Street",
    "Station Road",
    "Church Lane",
    "Victoria Road",
    "Green Lane",
    "Manor Road",
    "Park Avenue",
    "Queen Street",
    "King's Road",
    "Mill Lane",
    "Albert Road",
    "The Crescent",
    "Oak Avenue",
    "Windsor Road",
    "Grange Road",
    "Springfield Road",
    "York Road",
    "New Street",
    "Chapel Street",
    "Cedar Close",
)

FEMALE_FIRST_NAMES: tuple[str, ...] = (
    "Olivia", "Amelia", "Isla", "Ava", "Mia", "Ivy", "Lily", "Isabella", "Rosie", "Sophia",
    "Grace", "Freya", "Ella", "Emily", "Poppy", "Charlotte", "Evie", "Florence", "Sienna", "Chloe",
    "Hannah", "Sarah", "Emma", "Laura", "Jessica", "Priya", "Aisha", "Zara", "Niamh", "Fatima",
)  # fmt: skip
MALE_FIRST_NAMES: tuple[str, ...] = (
    "Oliver", "George", "Noah", "Arthur", "Leo", "Harry", "Oscar", "Jack", "Charlie", "Freddie",
    "James", "Thomas", "William", "Daniel", "Samuel", "Mohammed", "Arjun", "Liam", "Ethan", "Adam",
)  # fmt: skip
LAST_NAMES: tuple[str, ...] = (
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel",
    "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall",
    "Wood", "Jackson", "Clarke", "Khan", "Hughes", "Edwards", "Turner", "Hill", "Moore", "Cooper",
    "Ward", "Morris", "King", "Watson", "Harris", "Baker", "Singh", "Murphy", "O'Brien", "Kelly",
    "Campbell", "Stewart", "Ali", "Nguyen", "Chen", "Kowalski", "Rossi", "Ahmed", "Lewis", "Young",
)  # fmt: skip
EMAIL_DOMAINS: tuple[tuple[str, float], ...] = (
    ("gmail.com", 45),
    ("hotmail.co.uk", 15),
    ("outlook.com", 12),
    ("yahoo.co.uk", 10),
    ("icloud.com", 10),
    ("btinternet.com", 5),
    ("proton.me", 3),
)
# (gender, weight): the brand's customers are mostly women.
GENDERS: tuple[tuple[str, float], ...] = (
    ("Female", 72),
    ("Male", 25),
    ("Non-binary", 2),
    ("Prefer not to say", 1),
)

ORDER_STATUSES: tuple[tuple[str, float], ...] = (
    ("delivered", 80),
    ("shipped", 6),
    ("processing", 4),
    ("returned", 7),
    ("cancelled", 3),
)

# Email campaigns; each send features a few products.
CAMPAIGNS: tuple[str, ...] = (
    "New Arrivals",
    "Weekend Flash Sale",
    "Spring Collection",
    "Summer Sale",
    "Autumn Edit",
    "Winter Warmers",
    "Black Friday",
    "Cyber Monday",
    "Christmas Gift Guide",
    "January Sale",
    "Back in Stock",
    "Members Exclusive",
    "Denim Week",
    "Shoe Edit",
    "Last Chance",
    "We Miss You",
)

# Web pages a session walks through. (page, action).
LANDING_PAGES: tuple[tuple[str, float], ...] = (
    ("home.html", 55),
    ("search.html", 15),
    ("sale.html", 12),
    ("new-in.html", 10),
    ("account.html", 8),
)
BROWSE_ACTIONS: tuple[tuple[str, float], ...] = (
    ("view", 70),
    ("click", 15),
    ("add_to_cart", 8),
    ("add_to_wishlist", 4),
    ("search", 3),
)
LOGIN_PAGE = "login.html"
LOGIN_SUCCESS_PAGE = "login_success.html"

# (page, action, error_message, weight): errors that really occur on a shop site.
ERRORS: tuple[tuple[str, str, str, float], ...] = (
    ("checkout.html", "purchase", "Payment declined", 20),
    ("cart.html", "add_to_cart", "Item out of stock", 18),
    ("product.html", "view", "404 Not Found", 15),
    ("checkout.html", "view", "Session expired", 10),
    ("login.html", "login", "Invalid email or password", 12),
    ("checkout.html", "purchase", "500 Internal Server Error", 6),
    ("checkout.html", "apply_promo", "Promo code is invalid or expired", 8),
    ("checkout.html", "purchase", "3-D Secure authentication failed", 4),
    ("search.html", "search", "503 Service Unavailable", 3),
    ("account.html", "view", "403 Forbidden", 2),
    ("checkout.html", "view", "Delivery address could not be verified", 2),
)
