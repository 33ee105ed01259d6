"""Demo data for the embedded site: people to sign in as, genres, and a season of events in
East and West Africa. Loading twice changes nothing."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from boxoffice.accounts import passwords
from boxoffice.accounts import service as accounts
from boxoffice.accounts.models import Role, User
from boxoffice.catalog import service as catalog
from boxoffice.catalog.models import Category, Event, EventStatus
from boxoffice.catalog.schemas import (
    AvailabilityChange,
    CategoryCreate,
    EventCreate,
    TicketTypeCreate,
    VenueIn,
)
from boxoffice.db import Database, utcnow

DEMO_PASSWORD = "boxoffice-demo"  # noqa: S105 (demo data only, printed by `make run`)


@dataclass(frozen=True)
class DemoPerson:
    email: str
    name: str
    role: Role
    phone: str | None = None
    genres: tuple[str, ...] = ()


PEOPLE = (
    DemoPerson("admin@boxoffice.local", "Ada Admin", Role.ADMIN),
    DemoPerson(
        "kampala.live@boxoffice.local", "Kampala Live Promotions", Role.ORGANIZER, "+256772100200"
    ),
    DemoPerson("nairobi.sounds@boxoffice.local", "Nairobi Sounds", Role.ORGANIZER, "+254708100200"),
    DemoPerson(
        "lagos.groove@boxoffice.local", "Lagos Groove Collective", Role.ORGANIZER, "+2348031002000"
    ),
    DemoPerson("accra.stages@boxoffice.local", "Accra Stages", Role.ORGANIZER, "+233241002000"),
    DemoPerson(
        "fan@boxoffice.local", "Faith Fan", Role.ATTENDEE, "+256772123456", ("afrobeats", "jazz")
    ),
    DemoPerson(
        "wanjiku@boxoffice.local", "Wanjiku Kamau", Role.ATTENDEE, "+254708374149", ("gengetone",)
    ),
    DemoPerson(
        "kwame@boxoffice.local", "Kwame Mensah", Role.ATTENDEE, "+233241234567", ("highlife",)
    ),
)

CATEGORIES = (
    ("afrobeats", "Afrobeats"),
    ("amapiano", "Amapiano"),
    ("bongo-flava", "Bongo Flava"),
    ("gengetone", "Gengetone"),
    ("highlife", "Highlife"),
    ("jazz", "Jazz"),
    ("gospel", "Gospel"),
    ("hip-hop", "Hip-Hop"),
    ("rock", "Rock"),
    ("comedy", "Comedy"),
    ("theatre", "Theatre"),
)

# Country: (currency, IANA time zone).
COUNTRIES = {
    "UG": ("UGX", "Africa/Kampala"),
    "KE": ("KES", "Africa/Nairobi"),
    "TZ": ("TZS", "Africa/Dar_es_Salaam"),
    "RW": ("RWF", "Africa/Kigali"),
    "ET": ("ETB", "Africa/Addis_Ababa"),
    "NG": ("NGN", "Africa/Lagos"),
    "GH": ("GHS", "Africa/Accra"),
    "SN": ("XOF", "Africa/Dakar"),
    "CI": ("XOF", "Africa/Abidjan"),
}


@dataclass(frozen=True)
class Venue:
    name: str
    city: str
    country: str
    lat: float
    lng: float
    address: str | None = None


# Coordinates are the venue's own, to within a few hundred metres.
KOLOLO = Venue("Kololo Independence Grounds", "Kampala", "UG", 0.3265, 32.5960, "Kololo")
UG_THEATRE = Venue("Uganda National Cultural Centre", "Kampala", "UG", 0.3146, 32.5846)
LUGOGO = Venue("Lugogo Cricket Oval", "Kampala", "UG", 0.3290, 32.6035, "Lugogo By-Pass")
ENTEBBE = Venue("Lakeside Gardens", "Entebbe", "UG", 0.0560, 32.4790, "Circular Road")
JINJA = Venue("Source of the Nile Gardens", "Jinja", "UG", 0.4236, 33.2050)
KICC = Venue("KICC Grounds", "Nairobi", "KE", -1.2884, 36.8233, "Harambee Avenue")
KASARANI = Venue("Kasarani Stadium", "Nairobi", "KE", -1.2215, 36.8915, "Thika Road")
CARNIVORE = Venue("Carnivore Grounds", "Nairobi", "KE", -1.3283, 36.8005, "Langata Road")
ALLIANCE = Venue("Alliance Française Nairobi", "Nairobi", "KE", -1.2838, 36.8177)
NYALI = Venue("Nyali Beach Grounds", "Mombasa", "KE", -4.0429, 39.7180)
FORT_JESUS = Venue("Fort Jesus Courtyard", "Mombasa", "KE", -4.0627, 39.6796)
COCO = Venue("Coco Beach", "Dar es Salaam", "TZ", -6.7575, 39.2875, "Toure Drive, Oyster Bay")
MLIMANI = Venue("Mlimani City Hall", "Dar es Salaam", "TZ", -6.7716, 39.2287, "Sam Nujoma Road")
KCC = Venue("Kigali Convention Centre", "Kigali", "RW", -1.9547, 30.0930, "KG 2 Roundabout")
BK_ARENA = Venue("BK Arena", "Kigali", "RW", -1.9535, 30.1176, "Remera")
FENDIKA = Venue("Fendika Cultural Center", "Addis Ababa", "ET", 9.0225, 38.7650, "Kazanchis")
MILLENNIUM = Venue("Millennium Hall", "Addis Ababa", "ET", 8.9910, 38.7880, "Bole Road")
EKO = Venue("Eko Convention Centre", "Lagos", "NG", 6.4262, 3.4297, "Victoria Island")
MURI = Venue("Muri Okunola Park", "Lagos", "NG", 6.4335, 3.4242, "Victoria Island")
TERRA = Venue("Terra Kulture Arena", "Lagos", "NG", 6.4299, 3.4212, "Tiamiyu Savage Street")
EAGLE = Venue("Eagle Square", "Abuja", "NG", 9.0566, 7.4962, "Central Business District")
NT_GHANA = Venue("National Theatre of Ghana", "Accra", "GH", 5.5589, -0.2047)
LABADI = Venue("Labadi Beach", "Accra", "GH", 5.5611, -0.1456, "La")
JAZZ_LOFT = Venue("The Jazz Loft", "Accra", "GH", 5.5560, -0.1820, "Oxford Street, Osu")
AICC = Venue("Accra International Conference Centre", "Accra", "GH", 5.5575, -0.1947)
CNC_KUMASI = Venue("Centre for National Culture", "Kumasi", "GH", 6.6980, -1.6230)
BABA_YARA = Venue("Baba Yara Sports Stadium", "Kumasi", "GH", 6.6850, -1.6064)
GRAND_THEATRE = Venue("Grand Théâtre National", "Dakar", "SN", 14.6865, -17.4475)
PALAIS = Venue("Palais de la Culture", "Abidjan", "CI", 5.3046, -4.0098, "Treichville")


@dataclass(frozen=True)
class Tier:
    name: str
    price: int  # minor units of the event's currency (UGX, RWF, XOF: whole units)
    capacity: int
    ends_in_days: int | None = None  # early-bird tiers stop selling before the event


# There are no bookings until the selling issue, so no tier can honestly be sold out yet;
# tiny tiers (a handful of seats) stand in for the nearly sold-out ones.
EARLY_KES = Tier("Early bird", 100_000, 300, ends_in_days=-2)
MEET_AND_GREET = Tier("Meet & greet", 0, 5)


@dataclass(frozen=True)
class DemoEvent:
    title: str
    organizer: str  # a demo organizer's e-mail
    genre: str
    venue: Venue
    artists: tuple[str, ...]
    day: int  # start, in days from today in the venue's time zone; negative: already over
    tiers: tuple[Tier, ...]
    description: str = ""
    hour: int = 19  # local start time
    hours: int = 4
    draft: bool = False
    paused: bool = False
    sales_open_in_days: int | None = None


KAMPALA, NAIROBI, LAGOS, ACCRA = (p.email for p in PEOPLE[1:5])

# fmt: off
EVENTS = (
    DemoEvent("Kololo Afrobeats Festival", KAMPALA, "afrobeats", KOLOLO,
              ("Eddie Kato", "The Pearl Rhythm Band", "DJ Kasuku"), 12,
              (Tier("Ordinary", 50_000, 2_000), Tier("VIP", 150_000, 300),
               Tier("VVIP table (8 people)", 1_000_000, 12)),
              "Twelve hours of Afrobeats on the hill, headlined by Eddie Kato.", hour=14, hours=12),
    DemoEvent("Jazz at the Cultural Centre", KAMPALA, "jazz", UG_THEATRE,
              ("Amara Nakato Quartet",), 5,
              (Tier("Ordinary", 40_000, 250), Tier("Front rows", 80_000, 40)),
              "Standards and Ugandan folk tunes reworked for saxophone and adungu."),
    DemoEvent("Kampala Laughs Live", KAMPALA, "comedy", UG_THEATRE,
              ("Okello Mukasa", "Auntie Prossy", "MC Boda"), 19,
              (Tier("Ordinary", 30_000, 400), Tier("VIP", 70_000, 60)),
              "Stand-up in English and Luganda from Kampala's sharpest new voices.", hour=20),
    DemoEvent("Entebbe Lakeside Sundowner", KAMPALA, "amapiano", ENTEBBE,
              ("DJ Nalu", "Log Drum Society"), 26,
              (Tier("Ordinary", 35_000, 800), Tier("Cabana (6 people)", 600_000, 10)),
              "Amapiano by the lake from golden hour until late.", hour=16, hours=8),
    DemoEvent("Nile Source Rock Weekend", KAMPALA, "rock", JINJA,
              ("Rapids", "Black Kite", "The Owen Falls"), 40,
              (Tier("Day pass", 60_000, 1_200), Tier("Camping weekend", 180_000, 150)),
              "Guitars on the banks of the Nile; camping by the water.", hour=12, hours=10),
    DemoEvent("Kampala Hip-Hop Summit", KAMPALA, "hip-hop", LUGOGO,
              ("Lyrical Mutebi", "Kid Nsambya", "Queen Bwaise"), -10,
              (Tier("Ordinary", 20_000, 1_500), Tier("VIP", 60_000, 200)),
              "Cyphers, battles and the best of Ugandan hip-hop.", hour=16, hours=8),
    DemoEvent("The Boda Boda Diaries", KAMPALA, "theatre", UG_THEATRE,
              ("Kampala Ensemble Players",), 68,
              (Tier("Ordinary", 25_000, 300),),
              "A comedy in three acts about one motorbike and its many passengers.", draft=True),
    DemoEvent("Kigali Jazz Evenings", KAMPALA, "jazz", KCC,
              ("Isimbi Trio", "Mugisha & the Thousand Hills"), 33,
              (Tier("Regular", 15_000, 500), Tier("VIP", 40_000, 80), MEET_AND_GREET),
              "An evening of Rwandan jazz under the Convention Centre dome."),
    DemoEvent("Kigali Praise Night", KAMPALA, "gospel", BK_ARENA,
              ("Voices of Hope Choir", "Pastor Jean-Claude Habimana"), 54,
              (Tier("Regular", 5_000, 6_000), Tier("VIP", 20_000, 400)),
              "Choirs from across Rwanda in one night of praise.", hour=17),
    DemoEvent("Ethio-Jazz at Fendika", KAMPALA, "jazz", FENDIKA,
              ("Tesfaye Alemu Ensemble",), 15,
              (Tier("Seat", 80_000, 30), Tier("Table by the stage", 200_000, 6)),
              "Ethio-jazz in a small room: krar, masinko and brass.", hour=21, hours=3),
    DemoEvent("Addis Gospel Celebration", KAMPALA, "gospel", MILLENNIUM,
              ("Selam Mass Choir",), 75,
              (Tier("Regular", 50_000, 3_000), Tier("VIP", 150_000, 300)),
              "Amharic and English gospel with a hundred-voice choir.", hour=16),
    DemoEvent("Gengetone Takeover", NAIROBI, "gengetone", KASARANI,
              ("Matatu Boys", "Sheng Supreme", "DJ Mtaani"), 9,
              (EARLY_KES, Tier("Regular", 150_000, 5_000), Tier("VIP", 500_000, 400)),
              "Nairobi's loudest night: gengetone crews back to back.", hour=18, hours=6),
    DemoEvent("Nairobi Jazz Under the Stars", NAIROBI, "jazz", CARNIVORE,
              ("Zuri Wanjiru Quartet", "Kilimani Big Band"), 22,
              (Tier("Regular", 250_000, 800), Tier("VIP lounge", 800_000, 60)),
              "Open-air jazz with food stalls and a late jam session."),
    DemoEvent("Comedy Night at the Alliance", NAIROBI, "comedy", ALLIANCE,
              ("Otieno Njoroge", "Chebet Comedy"), 3,
              (Tier("Regular", 100_000, 120), Tier("Front row", 200_000, 4)),
              "Two comedians, one small room: book early.", hour=20, hours=3),
    DemoEvent("Nyali Amapiano Beach Party", NAIROBI, "amapiano", NYALI,
              ("DJ Pwani", "Log Drum Society"), 30,
              (Tier("Regular", 150_000, 1_500), Tier("VIP", 450_000, 150)),
              "Amapiano on the sand, from sunset to sunrise.", hour=17, hours=10),
    DemoEvent("Sauti za Pwani", NAIROBI, "theatre", FORT_JESUS,
              ("Mombasa Players",), 47,
              (Tier("Regular", 80_000, 250),),
              "A Swahili play of the coast, staged inside the old fort.", hour=19, hours=3),
    DemoEvent("Nairobi Gengetone Street Party", NAIROBI, "gengetone", KICC,
              ("Sheng Supreme", "Wakali wa Mtaa"), -18,
              (Tier("Regular", 100_000, 3_000),),
              "The street party that started the season.", hour=15, hours=8),
    DemoEvent("Nairobi Rock Revival", NAIROBI, "rock", CARNIVORE,
              ("Simba Amps", "The Rift Valley"), 85,
              (Tier("Regular", 200_000, 1_000),),
              "Kenyan rock bands old and new.", draft=True),
    DemoEvent("Bongo Flava Fiesta", NAIROBI, "bongo-flava", COCO,
              ("Mzee wa Bongo", "Dada Zuhura", "Kilimanjaro Crew"), 17,
              (Tier("Kawaida", 2_000_000, 4_000), Tier("VIP", 5_000_000, 300), MEET_AND_GREET),
              "Bongo Flava stars on the beach in Oyster Bay.", hour=16, hours=8),
    DemoEvent("Dar Hip-Hop Cypher", NAIROBI, "hip-hop", MLIMANI,
              ("Mc Kariakoo", "Bongo Verses"), -4,
              (Tier("Kawaida", 1_000_000, 800),),
              "Freestyles in Swahili and English.", hour=18, hours=5),
    DemoEvent("Bongo Flava Unplugged", NAIROBI, "bongo-flava", MLIMANI,
              ("Dada Zuhura",), 60,
              (Tier("Kawaida", 3_000_000, 600), Tier("VIP", 8_000_000, 60)),
              "Acoustic sets of the year's biggest songs.", sales_open_in_days=21),
    DemoEvent("Lagos Afrobeats Night", LAGOS, "afrobeats", EKO,
              ("Tunde Ade", "Ayo Starboy", "DJ Eko"), 7,
              (Tier("Regular", 1_500_000, 3_000), Tier("VIP", 5_000_000, 400),
               Tier("Table for 10", 50_000_000, 15)),
              "The biggest names in Lagos Afrobeats under one roof.", hour=20, hours=6),
    DemoEvent("Afrobeats in the Park", LAGOS, "afrobeats", MURI,
              ("Ngozi Vibes", "Island Riddim Band"), 36,
              (Tier("Regular", 1_000_000, 2_500), Tier("VIP", 3_500_000, 200)),
              "A family afternoon of Afrobeats on the Island.", hour=14, hours=8, paused=True),
    DemoEvent("Lagos Comedy Jam", LAGOS, "comedy", TERRA,
              ("Bolaji Laughs", "Aunty Titi", "MC Danfo"), 14,
              (Tier("Regular", 800_000, 500), Tier("VIP", 2_500_000, 50)),
              "Stand-up from Lagos and Accra, hosted by MC Danfo.", hour=19, hours=3),
    DemoEvent("Owambe! A Lagos Musical", LAGOS, "theatre", TERRA,
              ("Terra Stage Company",), 80,
              (Tier("Regular", 1_200_000, 400),),
              "A wedding, three aunties and too much jollof: the musical.", draft=True),
    DemoEvent("Abuja Gospel Experience", LAGOS, "gospel", EAGLE,
              ("Abuja Mass Choir", "Minister Grace Okafor"), 28,
              (Tier("Free entry", 0, 10_000), Tier("Reserved seat", 500_000, 1_000)),
              "An open-air night of worship in the capital.", hour=17, hours=5),
    DemoEvent("Abuja Hip-Hop Block Party", LAGOS, "hip-hop", EAGLE,
              ("Capital Flow", "Kid Garki"), 50,
              (Tier("Regular", 700_000, 2_000), Tier("VIP", 2_000_000, 150)),
              "Hip-hop, graffiti and street food.", hour=15, hours=8),
    DemoEvent("Dakar Jazz Nights", LAGOS, "jazz", GRAND_THEATRE,
              ("Moussa Diop Quintet", "Awa & the Sabar Horns"), 24,
              (Tier("Standard", 10_000, 1_200), Tier("Premium", 25_000, 150)),
              "Sabar drums meet jazz horns at the Grand Théâtre."),
    DemoEvent("Abidjan Afrobeats Connexion", LAGOS, "afrobeats", PALAIS,
              ("Kouassi Flow", "Ayo Starboy", "DJ Plateau"), 42,
              (Tier("Standard", 5_000, 3_000), Tier("VIP", 15_000, 300), MEET_AND_GREET),
              "Lagos meets Abidjan: Afrobeats and coupé-décalé.", hour=20, hours=6),
    DemoEvent("Highlife Classics", ACCRA, "highlife", NT_GHANA,
              ("Kofi & The Palm Wine Band", "Ama Serwaa"), 10,
              (Tier("Regular", 15_000, 900), Tier("VIP", 50_000, 100)),
              "Highlife standards played the old way, with a dance floor."),
    DemoEvent("Labadi Beach Afrobeats Festival", ACCRA, "afrobeats", LABADI,
              ("Kwesi Gold", "Efua Rhythm", "DJ Osu"), 45,
              (Tier("Regular", 20_000, 5_000), Tier("VIP", 80_000, 500)),
              "Two stages on the beach from noon until late.", hour=12, hours=12),
    DemoEvent("Kumasi Highlife Homecoming", ACCRA, "highlife", CNC_KUMASI,
              ("Ashanti Brass Band", "Kofi & The Palm Wine Band"), 21,
              (Tier("Regular", 10_000, 700),),
              "Highlife comes home to the Garden City.", hour=18),
    DemoEvent("Jazz Loft Sessions", ACCRA, "jazz", JAZZ_LOFT,
              ("Nii Armah Trio",), 6,
              (Tier("Seat", 25_000, 12), Tier("Bar stool", 15_000, 4)),
              "Sixteen seats, one trio, no microphones.", hour=20, hours=3),
    DemoEvent("Accra Gospel Praise Concert", ACCRA, "gospel", AICC,
              ("Accra Community Choir",), -7,
              (Tier("Regular", 10_000, 1_500),),
              "An evening of praise and thanksgiving.", hour=17),
    DemoEvent("Kumasi Rock Night", ACCRA, "rock", BABA_YARA,
              ("Garden City Riot", "Volta Voltage"), 58,
              (Tier("Regular", 12_000, 2_000), Tier("Pit", 30_000, 300)),
              "Ghanaian rock, loud, in the stadium.", hour=18, hours=5),
)
# fmt: on


async def load_demo(
    db: Database, *, now: datetime | None = None, on_step: Callable[[str], None] | None = None
) -> int:
    """Create the demo people, genres and events that are missing; the number created."""
    now = now or utcnow()
    created = 0
    password_hash = await passwords.hash_password(DEMO_PASSWORD)
    for person in PEOPLE:
        async with db.transaction() as session:
            created += await _add_person(session, person, password_hash, now)
        _step(on_step, person.email)
    for slug, name in CATEGORIES:
        async with db.transaction() as session:
            created += await _add_category(session, slug, name, now)
        _step(on_step, slug)
    for demo_event in EVENTS:
        async with db.transaction() as session:
            created += await _add_event(session, demo_event, now)
        _step(on_step, demo_event.title)
    return created


def demo_steps() -> int:
    return len(PEOPLE) + len(CATEGORIES) + len(EVENTS)


def _step(on_step: Callable[[str], None] | None, name: str) -> None:
    if on_step:
        on_step(name)


async def _add_person(
    session: AsyncSession, person: DemoPerson, password_hash: str, now: datetime
) -> int:
    if await accounts.find_user_by_email(session, person.email) is not None:
        return 0
    session.add(
        User(
            email=person.email,
            name=person.name,
            role=person.role,
            phone=person.phone,
            password_hash=password_hash,
            preferred_genres=list(person.genres),
            preferred_artists=[],
            created_at=now,
            updated_at=now,
        )
    )
    return 1


async def _add_category(session: AsyncSession, slug: str, name: str, now: datetime) -> int:
    if await session.scalar(select(Category.id).where(Category.slug == slug)):
        return 0
    admin = await _person(session, PEOPLE[0].email)
    data = CategoryCreate(slug=slug, name=name)
    await catalog.create_category(session, actor=admin, data=data, now=now)
    return 1


async def _add_event(session: AsyncSession, demo: DemoEvent, now: datetime) -> int:
    """The event, unless its organizer already has one of that title (the demo's key)."""
    organizer = await _person(session, demo.organizer)
    existing = await session.scalar(
        select(Event.id).where(Event.organizer_id == organizer.id, Event.title == demo.title)
    )
    if existing is not None:
        return 0
    event = await catalog.create_event(
        session, organizer=organizer, data=_event_create(demo, now), now=now
    )
    if demo.paused:
        await catalog.change_availability(
            session,
            event_id=event.id,
            manager=organizer,
            data=AvailabilityChange(on_sale=False),
            now=now,
        )
    return 1


def _event_create(demo: DemoEvent, now: datetime) -> EventCreate:
    venue = demo.venue
    currency, timezone = COUNTRIES[venue.country]
    local_day = now.astimezone(ZoneInfo(timezone)).date() + timedelta(days=demo.day)
    starts_at = datetime.combine(local_day, time(demo.hour), ZoneInfo(timezone))
    ends_at = starts_at + timedelta(hours=demo.hours)
    sales_start = None
    if demo.sales_open_in_days is not None:
        sales_start = now.replace(microsecond=0) + timedelta(days=demo.sales_open_in_days)
    tiers = [
        TicketTypeCreate(
            name=tier.name,
            price=tier.price,
            capacity=tier.capacity,
            max_per_order=min(10, tier.capacity),
            sales_end=_early_bird_end(tier, now, starts_at),
        )
        for tier in demo.tiers
    ]
    return EventCreate(
        title=demo.title,
        artists=list(demo.artists),
        genre=demo.genre,
        description=demo.description,
        venue=VenueIn(
            name=venue.name,
            address=venue.address,
            city=venue.city,
            country=venue.country,
            lat=venue.lat,
            lng=venue.lng,
        ),
        timezone=timezone,
        starts_at=starts_at,
        ends_at=ends_at,
        sales_start=sales_start,
        status=EventStatus.DRAFT if demo.draft else EventStatus.PUBLISHED,
        currency=currency,
        ticket_types=tiers,
    )


def _early_bird_end(tier: Tier, now: datetime, starts_at: datetime) -> datetime | None:
    if tier.ends_in_days is None:
        return None
    return min(now.replace(microsecond=0) + timedelta(days=tier.ends_in_days), starts_at)


async def _person(session: AsyncSession, email: str) -> User:
    user = await accounts.find_user_by_email(session, email)
    assert user is not None, f"demo person {email} is created first"
    return user
