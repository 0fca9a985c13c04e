"""A labelled retrieval set for long-term memory search, written for these tests.

One user's memory: 120 records (facts, preferences, session summaries, episodes) across travel,
food, software, health, finance, family and work, and 104 questions such a user or their agent
would ask, each labelled with the record(s) that answer it. 86 are paraphrases: 60 of them share
no term with their answer (after `memory._index.terms`), the rest only a common one ("first",
"live", "pay"), so mainly meaning finds them, while such words lead BM25 to other records. The 18
marked ``keyword`` share a distinctive word with their answer, the case BM25 is for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["fact", "preference", "summary", "episode"]


@dataclass(frozen=True, slots=True)
class Memory:
    id: str
    kind: Kind
    text: str

    @property
    def namespace(self) -> str:
        return f"/users/alex/{self.kind}"


@dataclass(frozen=True, slots=True)
class Question:
    text: str
    answers: frozenset[str]
    style: Literal["paraphrase", "keyword"] = "paraphrase"


def _m(id: str, kind: Kind, text: str) -> Memory:
    return Memory(id, kind, text)


def _q(text: str, *answers: str, keyword: bool = False) -> Question:
    return Question(text, frozenset(answers), "keyword" if keyword else "paraphrase")


F: Kind = "fact"
P: Kind = "preference"
S: Kind = "summary"
E: Kind = "episode"

MEMORIES: tuple[Memory, ...] = (
    # travel
    _m("t01", F, "Alex's passport expires in March 2027; it was renewed at the consulate in Lyon."),
    _m("t02", P, "Always books an aisle seat on flights longer than three hours."),
    _m(
        "t03",
        S,
        "Session summary: planned a ten-day trip to Japan in April, Tokyo first, then Kyoto and Osaka, "
        "travelling by bullet train with a seven-day rail pass.",
    ),
    _m(
        "t04",
        E,
        "Missed a connecting flight in Frankfurt last November because the first leg from Madrid left two "
        "hours late; Lufthansa rebooked them for the next morning.",
    ),
    _m("t05", P, "Prefers boutique hotels within walking distance of the old town over big chain resorts."),
    _m("t06", F, "Air France Flying Blue frequent flyer number FB 4821 7734, Gold status until January."),
    _m(
        "t07",
        E,
        "Got food poisoning from street seafood in Bangkok on the 2023 trip and spent two days in bed.",
    ),
    _m("t08", F, "Has a Global Entry membership and uses the kiosk when landing in the United States."),
    _m("t09", P, "Hates red-eye overnight flights and will pay more to travel during the day."),
    _m(
        "t10",
        S,
        "Session summary: compared car rental options for the Iceland ring road; chose a 4x4 from a local "
        "agency in Reykjavik with gravel insurance.",
    ),
    _m("t11", F, "Is afraid of heights and refuses cable cars and glass-floor observation decks."),
    _m("t12", P, "Travels with hand luggage only, a 40-litre backpack, even on two-week trips."),
    _m(
        "t13",
        E,
        "Lost a phone in a taxi in Lisbon; the driver returned it to the hotel reception the next day.",
    ),
    _m("t14", F, "Speaks fluent Spanish and basic Portuguese, which helps when travelling in South America."),
    _m(
        "t15",
        S,
        "Session summary: wants to visit Patagonia next February and asked about the W Trek in Torres del "
        "Paine; the refugios must be reserved months ahead.",
    ),
    _m("t16", P, "Wants travel insurance that covers skiing and other winter sports."),
    _m(
        "t17",
        E,
        "Celebrated the tenth wedding anniversary with a hot-air balloon ride over Cappadocia at sunrise.",
    ),
    _m("t18", F, "Keeps a list of countries visited; the count reached 41 with Vietnam last year."),
    # food
    _m("f01", F, "Severely allergic to peanuts; carries an epinephrine auto-injector at all times."),
    _m("f02", P, "Vegetarian since 2019 but still eats eggs and dairy."),
    _m("f03", P, "Drinks coffee black with no sugar, and never after 3 pm because it ruins their sleep."),
    _m(
        "f04",
        E,
        "Baked a sourdough loaf for the first time last weekend; the crumb was dense because the starter "
        "was too young.",
    ),
    _m("f05", P, "Loves very spicy food, especially Sichuan dishes with numbing peppercorns."),
    _m("f06", P, "Dislikes coriander; it tastes like soap to them."),
    _m(
        "f07",
        S,
        "Session summary: built a weekly meal plan of high-protein vegetarian lunches (lentil salads, tofu "
        "stir-fries and chickpea curries) to support strength training.",
    ),
    _m("f08", F, "Favourite restaurant is a small Ethiopian place called Abyssinia on Rue Oberkampf."),
    _m(
        "f09",
        E,
        "Hosted a dinner for eight friends in May and cooked a mushroom risotto that everyone liked.",
    ),
    _m("f10", P, "Prefers sparkling water to still and drinks about two litres a day."),
    _m("f11", F, "Owns a cast-iron skillet, a Dutch oven and an espresso machine, but no microwave."),
    _m("f12", P, "Avoids alcohol entirely from Monday to Thursday."),
    _m(
        "f13",
        S,
        "Session summary: asked for a birthday cake recipe for their daughter and chose a lemon drizzle cake "
        "without nuts because of the allergy.",
    ),
    _m("f14", E, "Tried fermenting kimchi at home; the jar overflowed in the fridge after four days."),
    _m("f15", F, "A vegetable box from a local organic farm is delivered every Thursday."),
    _m("f16", P, "Likes dark chocolate with at least 85 percent cocoa and dislikes milk chocolate."),
    _m("f17", F, "Is learning to make fresh pasta by hand and bought a pasta machine in October."),
    # software
    _m("s01", P, "Uses Neovim as the main editor, with a Lua configuration kept in a dotfiles repository."),
    _m("s02", F, "The team's production database is PostgreSQL 16 on a managed service in eu-west-1."),
    _m(
        "s03",
        E,
        "On 12 March a bad migration locked the orders table for forty minutes and checkout was down; the "
        "fix was to create the index concurrently.",
    ),
    _m("s04", P, "Wants code review comments to be direct and short, without softening phrases."),
    _m(
        "s05",
        S,
        "Session summary: debugged a memory leak in the Python worker; the cause was an unbounded "
        "lru_cache on a function taking request objects.",
    ),
    _m("s06", F, "Deploys services with Kubernetes on EKS and manages the manifests through Argo CD."),
    _m("s07", P, "Writes Python with type hints everywhere and runs mypy in strict mode in CI."),
    _m(
        "s08",
        E,
        "Accidentally pushed an AWS access key to a public GitHub repository in 2022 and rotated it.",
    ),
    _m("s09", F, "Their laptop is a 2023 MacBook Pro with an M3 chip and 36 GB of RAM."),
    _m(
        "s10",
        S,
        "Session summary: compared Kafka and RabbitMQ for the event bus and picked RabbitMQ because the "
        "volume is low and the team already operates it.",
    ),
    _m("s11", P, "Prefers dark themes in every application and the JetBrains Mono font."),
    _m("s12", F, "Maintains an open-source library for parsing GPX files, with about 900 stars on GitHub."),
    _m("s13", E, "Gave a talk about property-based testing with Hypothesis at PyCon Italia last year."),
    _m("s14", P, "Dislikes ORMs and writes raw SQL with a query builder instead."),
    _m("s15", F, "On-call rotation is every fourth week, Monday to Monday, with PagerDuty alerts."),
    _m(
        "s16",
        S,
        "Session summary: planned moving the frontend build from webpack to Vite; build time should drop "
        "from three minutes to twenty seconds.",
    ),
    _m("s17", F, "Signs Git commits and uses a YubiKey for SSH authentication."),
    # health
    _m("h01", F, "Has mild asthma and uses a salbutamol inhaler before running."),
    _m("h02", P, "Prefers working out early, usually a 5 km run at 6:30 before work."),
    _m(
        "h03",
        E,
        "Sprained the left ankle playing five-a-side football in January; six weeks of physiotherapy.",
    ),
    _m("h04", F, "Takes 10 mg of cetirizine daily during hay fever season, from May to July."),
    _m(
        "h05",
        S,
        "Session summary: set a goal of a half marathon in under two hours by October; the plan has four "
        "runs a week including one long run.",
    ),
    _m("h06", F, "Blood type is O negative; donates blood twice a year."),
    _m("h07", P, "Wants a reminder to stretch every hour while working at the desk."),
    _m("h08", E, "Had wisdom teeth removed in August and ate only soup for a week."),
    _m("h09", F, "Sleeps badly when the bedroom is warmer than 19 degrees."),
    _m("h10", P, "Does yoga on Sunday mornings at a studio near the canal."),
    _m("h11", F, "Wears glasses for short-sightedness, minus 2.5 in both eyes."),
    _m(
        "h12",
        S,
        "Session summary: discussed cutting screen time at night; will put the phone away after 10 pm and "
        "read paper books instead.",
    ),
    _m("h13", E, "Fainted during a hot yoga class last summer because of dehydration."),
    _m("h14", F, "Their GP is Dr. Okafor at the Riverside medical practice; appointments are booked online."),
    _m("h15", P, "Prefers swimming to the gym because it is easier on the knees."),
    _m("h16", F, "Is allergic to penicillin, which caused a rash in childhood."),
    _m(
        "h17",
        E,
        "Tracked resting heart rate with a smartwatch and saw it fall from 68 to 58 over six months of "
        "training.",
    ),
    # finance
    _m("n01", F, "Pays rent of 1,450 euros on the first of every month by standing order."),
    _m("n02", P, "Invests only in low-cost index funds, never in individual stocks."),
    _m(
        "n03",
        S,
        "Session summary: set a monthly budget of 400 euros for groceries and 150 for restaurants, with "
        "600 transferred to savings on payday.",
    ),
    _m(
        "n04",
        E,
        "Was charged twice for a hotel booking in Rome and got the duplicate back through a chargeback.",
    ),
    _m("n05", F, "Is saving for a deposit on a flat and has about 32,000 euros put aside."),
    _m("n06", P, "Pays by card or phone and almost never carries cash."),
    _m(
        "n07",
        F,
        "Files tax returns in both France and Germany because of freelance income from a German client.",
    ),
    _m("n08", E, "Lost about 2,000 euros on a cryptocurrency token in 2021 and has avoided crypto since."),
    _m("n09", F, "Banks with a neobank for daily spending and a traditional bank for savings."),
    _m(
        "n10",
        S,
        "Session summary: compared pension options; will raise voluntary pension contributions to 8 percent "
        "of salary from next year.",
    ),
    _m("n11", P, "Wants a summary of spending by category on the first Sunday of each month."),
    _m("n12", F, "Salary is paid on the 25th of each month."),
    _m("n13", E, "Negotiated a 7 percent raise at the annual review in December."),
    _m("n14", F, "Has an emergency fund covering six months of expenses in a high-interest savings account."),
    _m("n15", P, "Avoids buy-now-pay-later schemes and store credit cards."),
    _m(
        "n16",
        S,
        "Session summary: cancelled three unused subscriptions (a streaming service, a language app and a "
        "cloud storage plan), saving 38 euros a month.",
    ),
    _m("n17", F, "Gives 5 percent of income to charity, mostly to a malaria prevention fund."),
    # family
    _m("y01", F, "Has two children: Maya, born 2016, and Leo, born 2019."),
    _m("y02", F, "Their partner Sam works as a nurse on night shifts at the city hospital."),
    _m("y03", E, "Maya broke her wrist falling off a trampoline at a birthday party in June."),
    _m("y04", P, "Wants weekend plans to be outdoor activities the kids can join, like cycling or picnics."),
    _m("y05", F, "Their mother lives alone in Porto; they call her every Sunday evening."),
    _m(
        "y06",
        S,
        "Session summary: organised Leo's sixth birthday party, dinosaur-themed, at a soft-play centre for "
        "twelve children.",
    ),
    _m("y07", F, "The family dog is a rescue greyhound named Biscuit, adopted in 2020."),
    _m("y08", E, "Took the kids camping in the Vosges for the first time; it rained all weekend."),
    _m("y09", P, "Prefers the children to have no screens before school."),
    _m("y10", F, "Leo is in the first year of primary school and has swimming lessons on Wednesdays."),
    _m(
        "y11",
        S,
        "Session summary: planned Christmas at the grandparents' house in Porto, flying out on 22 December "
        "and back on the 29th.",
    ),
    _m("y12", F, "Their brother Daniel lives in Toronto and works as an architect."),
    _m("y13", E, "Married Sam in 2014 at a small ceremony on a beach in Brittany."),
    _m("y14", P, "Wants gift ideas for family members to be experiences rather than objects."),
    _m("y15", F, "Maya plays the violin and has lessons with a private teacher on Saturdays."),
    _m("y16", E, "Biscuit swallowed a sock in March and needed surgery at the vet."),
    _m("y17", F, "School pickup is at 4:30 pm; Alex does it on Tuesdays and Thursdays."),
    # work
    _m("w01", F, "Works as a senior backend engineer at a logistics company called Freightly."),
    _m(
        "w02",
        P,
        "Prefers asynchronous communication and keeps meetings to the afternoons; mornings are for deep "
        "work.",
    ),
    _m(
        "w03",
        S,
        "Session summary: prepared for quarterly planning; the team will focus on route optimisation and "
        "cutting cloud costs by 20 percent.",
    ),
    _m(
        "w04",
        E,
        "Presented the new tracking API to the board in September and got approval for two more hires.",
    ),
    _m("w05", F, "Their manager is Priya Raman, head of platform engineering."),
    _m("w06", P, "Works from home on Mondays and Fridays and from the office the rest of the week."),
    _m("w07", F, "Has 27 days of annual leave, 12 of which remain this year."),
    _m("w08", E, "Mentored an intern, Tomás, who built the internal status dashboard over the summer."),
    _m(
        "w09",
        S,
        "Session summary: wrote a self-review for the staff engineer promotion case, highlighting the "
        "billing system redesign.",
    ),
    _m("w10", F, "Commutes by bike, 25 minutes each way along the river."),
    _m("w11", P, "Wants meeting notes as bullet lists with owners and due dates."),
    _m(
        "w12",
        E,
        "A disagreement with the product team about the release date was settled by cutting two features.",
    ),
    _m("w13", F, "Interviews candidates for a mid-level engineer role every Thursday afternoon."),
    _m(
        "w14",
        S,
        "Session summary: drafted a proposal to adopt OpenTelemetry for tracing across all services.",
    ),
    _m("w15", F, "The employment contract has a three-month notice period."),
    _m("w16", P, "Blocks Friday afternoons for learning and reading papers."),
    _m("w17", E, "Burned out in spring 2023 and took three weeks off; now limits overtime strictly."),
)

QUESTIONS: tuple[Question, ...] = (
    # travel
    _q("When does my travel document run out?", "t01"),
    _q("Where do I like to sit when I fly a long way?", "t02"),
    _q("What's the itinerary for the cherry blossom holiday?", "t03"),
    _q("Did a layover ever go wrong for me in Germany?", "t04"),
    _q("What kind of place do I like to stay in?", "t05"),
    _q("What's my loyalty programme ID with the French airline?", "t06"),
    _q("Did I get sick from something I ate abroad?", "t07"),
    _q("How do I skip the immigration queue in America?", "t08"),
    _q("Do I mind departures in the middle of the night?", "t09"),
    _q("Which vehicle did we pick for driving around that northern island?", "t10"),
    _q("Should I take the gondola up the mountain?", "t11"),
    _q("How much baggage do I usually bring?", "t12"),
    _q("Which languages can I get by in?", "t14"),
    _q("Trekking in southern Chile", "t15", keyword=True),
    _q("Does my insurance need to cover the slopes?", "t16", keyword=True),
    _q("How did we mark our anniversary?", "t17", keyword=True),
    _q("What happened to my mobile in Portugal?", "t13"),
    _q("How many countries have I visited?", "t18", keyword=True),
    # food
    _q("Is there anything I must never eat because it could kill me?", "f01"),
    _q("Do I eat meat?", "f02"),
    _q("How do I take my coffee?", "f03", keyword=True),
    _q("How did my first attempt at making bread go?", "f04"),
    _q("Do I enjoy hot chillies?", "f05"),
    _q("Which herb can't I stand?", "f06"),
    _q("What should I cook at midday to help build muscle?", "f07"),
    _q("What's my go-to place for dining out?", "f08"),
    _q("What did I serve my guests when I had people round?", "f09"),
    _q("What pans and appliances are in my kitchen?", "f11"),
    _q("Would I have a glass of wine on a Tuesday?", "f12"),
    _q("When does the produce delivery arrive?", "f15"),
    _q("What sort of chocolate should I buy for myself?", "f16", keyword=True),
    _q("homemade noodles hobby", "f17"),
    # software
    _q("Which text editor do I use?", "s01", keyword=True),
    _q("What database do we run in production?", "s02", keyword=True),
    _q("Tell me about the outage caused by a schema change", "s03"),
    _q("How do I want feedback on pull requests worded?", "s04"),
    _q("Why was the background job using more and more RAM?", "s05"),
    _q("How are our services shipped to the cluster?", "s06"),
    _q("What's my stance on static typing?", "s07"),
    _q("Did I ever leak a secret credential?", "s08"),
    _q("What computer do I have?", "s09"),
    _q("Which message broker did we choose?", "s10"),
    _q("Which font do I like for coding?", "s11", keyword=True),
    _q("What's the open source project I maintain?", "s12", keyword=True),
    _q("Have I spoken at a conference?", "s13"),
    _q("How do I feel about object-relational mappers?", "s14"),
    _q("When am I on call?", "s15", keyword=True),
    _q("Speeding up how the web client gets bundled", "s16"),
    # health
    _q("Do I have any breathing problems?", "h01"),
    _q("What time of day do I exercise?", "h02"),
    _q("Have I hurt my leg before?", "h03"),
    _q("What do I take for pollen allergies?", "h04"),
    _q("What's my race target this year?", "h05"),
    _q("Could I give blood to anyone?", "h06", keyword=True),
    _q("What bedroom temperature lets me rest well?", "h09", keyword=True),
    _q("Who is my family doctor?", "h14"),
    _q("Which antibiotic am I allergic to?", "h16"),
    _q("Has my fitness improved according to my wearable?", "h17"),
    _q("What kind of sport is gentle on my joints?", "h15"),
    _q("Did I ever pass out while exercising?", "h13"),
    _q("How did I recover after the dentist pulled some teeth?", "h08"),
    # finance
    _q("How much do I pay for housing?", "n01"),
    _q("What's my investment approach?", "n02"),
    _q("How much can I spend on food shopping each month?", "n03"),
    _q("What happened with the double payment for a stay in Italy?", "n04"),
    _q("How close am I to buying an apartment?", "n05"),
    _q("Do I use banknotes?", "n06"),
    _q("Which countries do I pay income tax in?", "n07"),
    _q("Have I lost money on digital currencies?", "n08"),
    _q("How much am I putting towards retirement?", "n10"),
    _q("When do I get paid?", "n12"),
    _q("Did I get a pay rise?", "n13"),
    _q("What's my rainy-day cushion?", "n14"),
    _q("Which subscriptions did I cancel?", "n16", keyword=True),
    _q("Which causes do I donate to?", "n17"),
    # family
    _q("How old are my kids?", "y01"),
    _q("What does my spouse do for a living?", "y02"),
    _q("Which of my children broke a bone?", "y03"),
    _q("Where does my mum live?", "y05"),
    _q("What was the theme of my son's party?", "y06"),
    _q("What breed is our pet?", "y07"),
    _q("How did our first tent trip with the children go?", "y08"),
    _q("When are the holidays with grandma planned?", "y11"),
    _q("Where does my sibling live?", "y12"),
    _q("Where was our wedding?", "y13"),
    _q("What instrument does my daughter play?", "y15"),
    _q("Why did our pet need an operation?", "y16"),
    _q("Which days do I collect the kids from school?", "y17", keyword=True),
    # work
    _q("Where do I work and in what role?", "w01"),
    _q("When do I prefer to have meetings?", "w02", keyword=True),
    _q("What are the team's priorities this quarter?", "w03"),
    _q("Who is my boss?", "w05"),
    _q("Which days am I remote?", "w06"),
    _q("How much holiday do I have left?", "w07"),
    _q("Who did I supervise last summer?", "w08"),
    _q("What did I emphasise to get promoted?", "w09"),
    _q("How do I get to the office?", "w10"),
    _q("How should minutes be written up?", "w11"),
    _q("Have I ever been exhausted from overwork?", "w17"),
    _q("What tracing standard did I suggest?", "w14", keyword=True),
    _q("How long must I give before quitting?", "w15"),
    # several answers
    _q("What am I allergic to?", "f01", "h16", "h04"),
    _q("Everything about Porto", "y05", "y11", keyword=True),
    _q("Tell me about our dog", "y07", "y16"),
)
