"""A seeded synthetic preference data set whose defects are known, so every page works offline.

Pairs come from eight topic clusters and three sources with different prompt styles. A good
(chosen) answer is several on-topic, specific sentences; a bad (rejected) answer is one of six
kinds (refusal, terse, rude: short; wrong: about as long; off-topic: as long, about another topic;
padded: longer and empty), so the longer answer wins only ~64 % of the time and a scorer that reads
content beats the length rule. Three defects are planted in exact, known numbers
and recorded in metadata columns so that later pages can show whether a method finds them:

* ``is_flipped``: chosen and rejected swapped (label noise). A third of the flips
  (``subtle_flip_share``) are on *subtle* pairs (``rejected_kind == "subtle"``): the worse answer
  is the better one with one fact swapped for a fact about another topic, so both answers have
  the same length and style and only the prompt's topic tells them apart. These flips keep the
  length pattern and no linear reader of the answers alone can see them, so an audit of the demo
  is honest rather than perfect; ``subtle_share`` of the other pairs are subtle too, correctly
  labelled, so "subtle" itself says nothing about the label;
* ``duplicate_of``: ``id`` of the pair this one nearly duplicates (−1 when none);
* ``is_low_quality``: both answers are poor, so the label carries little signal.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

DEFAULT_N = 3000
DEFAULT_FLIP_SHARE = 0.10
DEFAULT_DUPLICATE_SHARE = 0.05
DEFAULT_LOW_QUALITY_SHARE = 0.08
DEFAULT_SUBTLE_SHARE = 0.05       # correctly labelled subtle pairs, as a share of all pairs
DEFAULT_SUBTLE_FLIP_SHARE = 1 / 3  # of the flips, the share planted on subtle pairs

TOPICS: dict[str, dict[str, list[str]]] = {
    "cooking": {
        "subjects": ["a sourdough loaf", "a weeknight curry", "risotto", "a tomato sauce", "roast chicken",
                     "vegetable stock", "pancakes", "a lemon tart", "stir-fried noodles", "bean chili"],
        "asks": ["How do I make {s} at home?", "What is the secret to good {s}?",
                 "Why does my {s} never turn out right?", "Can you give me a simple recipe for {s}?"],
        "facts": ["Start by weighing the flour and salt so the ratios stay consistent.",
                  "Brown the aromatics slowly over medium heat before adding liquid.",
                  "Season in stages and taste after every addition.",
                  "Let the dough rest so the gluten relaxes and the texture improves.",
                  "Deglaze the pan with stock to lift the caramelised bits.",
                  "A heavy pot holds heat evenly and prevents scorching.",
                  "Finish with acid, such as lemon juice, to brighten the flavours.",
                  "Toast whole spices in a dry pan to release their oils.",
                  "Rest meat for ten minutes after roasting so the juices settle.",
                  "Salt pasta water generously; it is the only chance to season the noodles."],
    },
    "programming": {
        "subjects": ["a Python list comprehension", "a memory leak", "a SQL join", "a race condition",
                     "unit tests", "a REST API", "a git merge conflict", "recursion", "a regex", "a Dockerfile"],
        "asks": ["How do I debug {s}?", "Can you explain {s} with an example?",
                 "What is the best practice for {s}?", "Why is {s} so confusing?"],
        "facts": ["Reproduce the problem with the smallest possible input first.",
                  "Write a failing unit test that captures the bug before fixing it.",
                  "Use a debugger breakpoint to inspect variables at the failing line.",
                  "Read the stack trace from the bottom up to find your own code.",
                  "Keep functions small so each one does a single thing.",
                  "Profile before optimising; the slow part is rarely where you guess.",
                  "Pin dependency versions so builds are reproducible.",
                  "Use a lock or an atomic operation around shared mutable state.",
                  "Version control lets you bisect to the commit that introduced the bug.",
                  "Type hints and a linter catch many mistakes before runtime."],
    },
    "travel": {
        "subjects": ["Kyoto", "a train trip across Europe", "Patagonia", "a weekend in Lisbon",
                     "backpacking in Vietnam", "a road trip in Iceland", "Marrakech", "the Scottish Highlands",
                     "a budget trip to Mexico City", "a ski holiday in the Alps"],
        "asks": ["What should I plan for {s}?", "Any tips for {s}?", "How much time do I need for {s}?",
                 "What do people usually get wrong about {s}?"],
        "facts": ["Book long-distance trains early; fares rise sharply close to departure.",
                  "Carry a little local cash for markets and small guesthouses.",
                  "Check visa and passport validity rules months before you fly.",
                  "Travel insurance that covers medical evacuation is worth the cost.",
                  "Shoulder season brings lower prices and thinner crowds.",
                  "Download offline maps in case mobile data is patchy.",
                  "Learn a few phrases of the local language; people appreciate it.",
                  "Pack layers, because mountain weather changes within hours.",
                  "Leave a buffer day in the itinerary for delays.",
                  "Public transport passes often pay for themselves in two days."],
    },
    "finance": {
        "subjects": ["an emergency fund", "index funds", "paying off credit card debt", "a retirement account",
                     "a monthly budget", "a mortgage", "inflation", "compound interest", "taxes on savings",
                     "a first investment"],
        "asks": ["How should I think about {s}?", "Is {s} a good idea for a beginner?",
                 "Can you explain {s} simply?", "What mistakes do people make with {s}?"],
        "facts": ["Keep three to six months of expenses in an easily accessible account.",
                  "Low-cost index funds spread risk across many companies.",
                  "Pay off high-interest debt before investing in volatile assets.",
                  "Compound interest rewards starting early more than contributing more later.",
                  "Automate savings on payday so the decision is made once.",
                  "Fees of one percent a year compound into a large share of returns.",
                  "Diversify across asset classes to reduce the impact of a single crash.",
                  "Track spending for a month before setting a budget.",
                  "Employer matching contributions are effectively free money.",
                  "Inflation erodes cash held for many years."],
    },
    "health": {
        "subjects": ["better sleep", "a running routine", "lower back pain", "drinking more water",
                     "stretching", "a balanced diet", "stress", "strength training", "posture at a desk",
                     "seasonal allergies"],
        "asks": ["How can I improve {s}?", "What helps with {s}?", "Where do I start with {s}?",
                 "Is there evidence behind advice on {s}?"],
        "facts": ["Keep a regular sleep schedule, even on weekends.",
                  "Increase training volume by about ten percent a week to avoid injury.",
                  "Strengthening the core and hips often relieves lower back strain.",
                  "See a doctor if symptoms persist or get worse.",
                  "Whole foods, vegetables and protein make meals more filling.",
                  "Short walks every hour counter long periods of sitting.",
                  "Warm up before exercise and stretch gently afterwards.",
                  "Caffeine late in the day can delay sleep for hours.",
                  "Progressive overload is the principle behind strength gains.",
                  "Breathing exercises can lower acute stress within minutes."],
    },
    "history": {
        "subjects": ["the Roman Republic", "the printing press", "the Silk Road", "the Industrial Revolution",
                     "the Meiji Restoration", "the fall of Constantinople", "the Hanseatic League",
                     "the Renaissance in Florence", "the abolition of slavery", "the space race"],
        "asks": ["What caused {s}?", "Why was {s} important?", "Can you summarise {s}?",
                 "What is a common myth about {s}?"],
        "facts": ["Historians stress long-term economic causes as well as single events.",
                  "Trade networks moved ideas and diseases along with goods.",
                  "Primary sources from the period often disagree with later accounts.",
                  "Political institutions changed gradually rather than overnight.",
                  "New technology lowered the cost of spreading information.",
                  "Urban merchants gained influence as commerce expanded.",
                  "Religious authorities played a central role in the conflicts of the era.",
                  "The consequences unfolded over several generations.",
                  "Regional differences make broad summaries misleading.",
                  "Archaeological evidence has revised several older theories."],
    },
    "math": {
        "subjects": ["derivatives", "prime numbers", "probability", "matrix multiplication",
                     "the Pythagorean theorem", "logarithms", "standard deviation", "proof by induction",
                     "complex numbers", "Bayes' theorem"],
        "asks": ["Can you explain {s} intuitively?", "How do I compute {s}?", "Why does {s} work?",
                 "What is {s} used for?"],
        "facts": ["Start from the definition and check it on a small example.",
                  "A derivative measures the instantaneous rate of change.",
                  "Every integer greater than one factors uniquely into primes.",
                  "Probabilities of disjoint events add up.",
                  "Matrix multiplication composes linear transformations.",
                  "A logarithm answers which power produces a given number.",
                  "Standard deviation is the square root of the variance.",
                  "Induction proves a base case and then the step from n to n plus one.",
                  "Bayes' theorem updates a prior belief with the likelihood of evidence.",
                  "Drawing a picture often reveals why an identity holds."],
    },
    "gardening": {
        "subjects": ["tomato plants", "a compost heap", "houseplants", "a vegetable bed", "roses",
                     "a lawn", "herbs on a balcony", "fruit trees", "seed starting", "slugs"],
        "asks": ["How do I take care of {s}?", "What am I doing wrong with {s}?",
                 "When is the best time to work on {s}?", "Any advice for {s}?"],
        "facts": ["Water deeply and less often so roots grow downwards.",
                  "Mulch keeps soil moist and suppresses weeds.",
                  "Most vegetables need at least six hours of direct sun.",
                  "Balance green and brown material in compost for faster breakdown.",
                  "Prune in late winter while the plant is dormant.",
                  "Check drainage holes; soggy soil rots houseplant roots.",
                  "Rotate crops each year to reduce soil-borne disease.",
                  "Harden off seedlings for a week before planting them out.",
                  "Beer traps and copper tape are low-toxicity slug controls.",
                  "Test soil pH before adding lime or fertiliser."],
    },
}

SOURCES = {
    "demo-forum": ["hey all, {q}", "quick question: {q}", "{q} thanks in advance!"],
    "demo-support": ["Hello, I need some help. {q}", "Good morning. {q} I would appreciate guidance.",
                     "{q} Please advise."],
    "demo-synthetic": ["{q}", "Question: {q}", "{q} Answer concisely."],
}

# Rejected answers are not simply shorter: "padded" ones are longer than a good answer and say
# nothing, "off_topic" ones are as long as a good answer but about another topic. So the length rule
# is weak on the demo (as on real data it is a trap, not a method) and a scorer must read content.
REJECTED_KINDS = ("refusal", "off_topic", "terse", "wrong", "rude", "padded")
REJECTED_SHARES = (0.1, 0.25, 0.1, 0.2, 0.1, 0.25)
_FILLER = ["There are many different factors to consider here.", "It really depends on your situation and goals.",
           "Everyone has their own approach, and that is fine.", "It is important to think about it carefully.",
           "Some people find one way works, others prefer another.", "In general, it is best to keep an open mind.",
           "This is a common question and there is no single answer.", "Take your time and see what feels right.",
           "Results can vary a lot from one case to the next.", "It is worth reading more about it before deciding."]
_REFUSALS = ["I'm sorry, but I can't help with that.", "I am not able to answer this question.",
             "That's not something I can assist with."]
_TERSE = ["It depends.", "Just look it up online.", "Try harder.", "Not sure, maybe.", "Do whatever works."]
_WRONG = ["Actually the opposite is true and the usual advice is a myth.",
          "There is no reason to plan ahead; it never makes a difference.",
          "Experts agree this cannot be learned, so do not bother."]
_RUDE = ["That's a silly thing to ask.", "Why would anyone care about this?", "Figure it out yourself."]


def _good_answer(rng: np.random.Generator, topic: str, subject: str) -> str:
    facts = TOPICS[topic]["facts"]
    picked = [facts[i] for i in rng.choice(len(facts), size=int(rng.integers(3, 6)), replace=False)]
    opener = rng.choice([f"Good question about {subject}.", f"Here is how to approach {subject}.",
                         f"A few things matter most for {subject}."])
    if rng.random() < 0.4:
        body = " ".join(f"{i}. {fact}" for i, fact in enumerate(picked, start=1))
    else:
        body = " ".join(picked)
    return f"{opener} {body}"


def _bad_answer(rng: np.random.Generator, kind: str, topic: str, subject: str) -> str:
    if kind == "refusal":
        return str(rng.choice(_REFUSALS))
    if kind == "terse":
        return str(rng.choice(_TERSE))
    if kind == "rude":
        return f"{rng.choice(_RUDE)} {rng.choice(_TERSE)}"
    if kind == "wrong":  # confidently wrong, at about a good answer's length
        filler = [_FILLER[i] for i in rng.choice(len(_FILLER), size=int(rng.integers(1, 4)), replace=False)]
        return f"About {subject}: {rng.choice(_WRONG)} " + " ".join(filler)
    if kind == "padded":  # longer than a good answer, and empty
        filler = [_FILLER[i] for i in rng.choice(len(_FILLER), size=int(rng.integers(5, 8)), replace=False)]
        return f"Let me say a few things about {subject}. " + " ".join(filler)
    other = rng.choice([t for t in TOPICS if t != topic])  # off_topic: a fluent, full-length answer to another topic
    facts = TOPICS[other]["facts"]
    picked = " ".join(facts[i] for i in rng.choice(len(facts), size=int(rng.integers(3, 6)), replace=False))
    return f"Here is how to approach {subject}. {picked}"


def _subtle(rng: np.random.Generator, good: str, topic: str) -> str:
    """The good answer with one of its facts swapped for a fact of another topic (same length and
    style; only the prompt's topic says it is worse)."""
    own = [fact for fact in TOPICS[topic]["facts"] if fact in good]
    other = TOPICS[str(rng.choice([t for t in TOPICS if t != topic]))]["facts"]
    return good.replace(str(rng.choice(own)), str(rng.choice(other)), 1)


def _perturb(rng: np.random.Generator, text: str) -> str:
    """A near-duplicate: same content with a small surface edit."""
    edits = [lambda t: t.lower(), lambda t: t.replace("?", " ?"), lambda t: t + " :)",
             lambda t: t.replace(".", "!", 1), lambda t: "  " + t]
    return edits[int(rng.integers(len(edits)))](text)


def demo_frame(n: int = DEFAULT_N, seed: int = 0, *, flip_share: float = DEFAULT_FLIP_SHARE,
               duplicate_share: float = DEFAULT_DUPLICATE_SHARE,
               low_quality_share: float = DEFAULT_LOW_QUALITY_SHARE, subtle_share: float = DEFAULT_SUBTLE_SHARE,
               subtle_flip_share: float = DEFAULT_SUBTLE_FLIP_SHARE) -> pd.DataFrame:
    """The demo pairs as a DataFrame (canonical columns + metadata). Same ``(n, seed)`` → same rows."""
    if n < 20:
        raise ValueError("the demo set needs n >= 20")
    for share in (flip_share, duplicate_share, low_quality_share, subtle_share, subtle_flip_share):
        if not 0 <= share < 1:
            raise ValueError("shares must be in [0, 1)")
    rng = np.random.default_rng(seed)
    n_dup = int(round(duplicate_share * n))
    n_base = n - n_dup
    topics = list(TOPICS)
    sources = list(SOURCES)
    rows = []
    for i in range(n_base):
        topic = topics[int(rng.integers(len(topics)))]
        source = sources[int(rng.integers(len(sources)))]
        spec = TOPICS[topic]
        subject = str(rng.choice(spec["subjects"]))
        question = str(rng.choice(spec["asks"])).format(s=subject)
        prompt = str(rng.choice(SOURCES[source])).format(q=question)
        kind = str(rng.choice(REJECTED_KINDS, p=REJECTED_SHARES))
        rows.append({"prompt": prompt, "chosen": _good_answer(rng, topic, subject),
                     "rejected": _bad_answer(rng, kind, topic, subject), "id": i, "topic": topic,
                     "source": source, "rejected_kind": kind, "subject": subject})
    # Defects on disjoint random sets of the base pairs, in exact numbers.
    order = rng.permutation(n_base)
    n_low = int(round(low_quality_share * n))
    n_flip = int(round(flip_share * n))
    low = set(order[:n_low].tolist())
    flip = set(order[n_low:n_low + n_flip].tolist())
    for i, row in enumerate(rows):
        row["is_low_quality"] = i in low
        row["is_flipped"] = i in flip
        row["duplicate_of"] = -1
        if i in low:  # both answers poor: a weak answer "wins" over a worse one
            row["chosen"] = _bad_answer(rng, "terse", row["topic"], row["subject"]) + " " + \
                str(rng.choice(TOPICS[row["topic"]]["facts"]))
            row["rejected"] = _bad_answer(rng, str(rng.choice(["refusal", "rude"])), row["topic"], row["subject"])
        if i in flip:
            row["chosen"], row["rejected"] = row["rejected"], row["chosen"]
    clean = [i for i in range(n_base) if i not in low and i not in flip]
    # Subtle pairs from a separate seeded stream, so that every other row is what it was before.
    extra = np.random.default_rng([seed, 1])
    n_subtle_flips = int(round(subtle_flip_share * len(flip)))
    n_subtle = min(int(round(subtle_share * n)), len(clean))
    for i in extra.choice(sorted(flip), n_subtle_flips, replace=False).tolist():  # flipped: the good one is rejected
        rows[i]["chosen"] = _subtle(extra, rows[i]["rejected"], rows[i]["topic"])
        rows[i]["rejected_kind"] = "subtle"
    for i in extra.choice(clean, n_subtle, replace=False).tolist():
        rows[i]["rejected"] = _subtle(extra, rows[i]["chosen"], rows[i]["topic"])
        rows[i]["rejected_kind"] = "subtle"
    originals = rng.choice(clean, size=n_dup, replace=n_dup > len(clean))
    for j, original in enumerate(originals.tolist()):
        src = rows[original]
        rows.append({**src, "id": n_base + j, "prompt": _perturb(rng, src["prompt"]),
                     "chosen": _perturb(rng, src["chosen"]), "duplicate_of": src["id"],
                     "is_low_quality": False, "is_flipped": False})
    # Shuffle so defects are not clustered at the end, keeping ids stable.
    frame = pd.DataFrame(rows).iloc[rng.permutation(len(rows))].reset_index(drop=True)
    frame = frame.drop(columns=["subject"])
    return frame[["prompt", "chosen", "rejected", "id", "topic", "source", "rejected_kind",
                  "is_flipped", "is_low_quality", "duplicate_of"]]
