"""Word lists for the long-gap cue task ("i grew up in france ... i speak fluent french").

``COUNTRIES`` pairs each country with a language no other country in the list shares, so the
language is a function of the country and chance accuracy is exactly 1/K. ``FILLER_WORDS`` are
ordinary English words that are neither countries, languages nor the frame words of the cue
("i", "grew", "up", "in", "speak", "fluent"), so the filler carries no information about the
target ("." is a filler word: grammar sentences end with it). ``GRAMMAR`` is a small sentence grammar (determiner adjective noun verb ...) whose words are
all filler words, for filler that reads like text.
"""
from __future__ import annotations

# (country, language): one language per country, none repeated.
COUNTRIES: tuple[tuple[str, str], ...] = (
    ("france", "french"), ("germany", "german"), ("italy", "italian"), ("spain", "spanish"),
    ("portugal", "portuguese"), ("greece", "greek"), ("poland", "polish"), ("sweden", "swedish"),
    ("norway", "norwegian"), ("denmark", "danish"), ("finland", "finnish"), ("netherlands", "dutch"),
    ("hungary", "hungarian"), ("turkey", "turkish"), ("russia", "russian"), ("ukraine", "ukrainian"),
    ("japan", "japanese"), ("china", "mandarin"), ("korea", "korean"), ("vietnam", "vietnamese"),
    ("thailand", "thai"), ("indonesia", "indonesian"), ("iran", "persian"), ("israel", "hebrew"),
    ("ethiopia", "amharic"), ("kenya", "swahili"), ("india", "hindi"), ("czechia", "czech"),
    ("romania", "romanian"), ("bulgaria", "bulgarian"), ("croatia", "croatian"), ("iceland", "icelandic"),
    ("ireland", "irish"), ("wales", "welsh"), ("georgia", "georgian"), ("armenia", "armenian"),
    ("mongolia", "mongolian"), ("latvia", "latvian"), ("lithuania", "lithuanian"), ("estonia", "estonian"),
)

# The words that frame the cue; the filler never contains them.
FRAME_WORDS: tuple[str, ...] = ("i", "grew", "up", "in", "speak", "fluent")

_GRAMMAR_PARTS = {
    "det": "the a this that every some one my your our their each".split(),
    "adj": ("big small old young red blue green quiet loud happy tired busy cold warm bright dark "
            "heavy light clever brave gentle strange simple early late").split(),
    "noun": ("dog cat house tree river car book teacher child friend garden window door city road "
             "table chair letter song story music morning evening train bird market farmer doctor "
             "student kitchen lamp bottle apple bread coffee paper phone bridge hill village").split(),
    "verb": ("sees likes finds carries opens paints reads builds watches follows helps visits "
             "cleans draws moves fixes buys sells hears remembers").split(),
    "adv": "slowly quickly often rarely always never quietly happily carefully suddenly".split(),
}

# Filler: the grammar's words plus more everyday words (all lower case, none a frame word).
_EXTRA = ("about after again against almost along already also although among another answer "
          "anything around away back because before began behind being below between both bring "
          "brought called came cannot change close come could country dance day different does done "
          "down during enough even ever far fast feel few field fire food form found four free full "
          "gave give goes going gold good got great green ground group grow half hand hard has have "
          "head help here high hold home horse hour idea important inside just keep kind knew know "
          "land large last laugh learn leave left less life line little live long look made make many "
          "may mean might mind money more most mother mountain much must name near need never new next "
          "night north nothing now number ocean off often only open order other outside over own page "
          "part people picture place plant play point poor present problem question quite rain ready "
          "real rest right room round run said same school sea second seem seven shall short should "
          "show side since sleep snow so something sometimes soon south stand start stay still stone "
          "stop street strong summer sun sure take talk ten than then there these thing think those "
          "though three through time today together took top toward turn two under until upon usual "
          "very walk want water way week well went were west what where which while white whole why "
          "wind winter with without wood word work world would write year yellow yes yet").split()


def _filler() -> tuple[str, ...]:
    excluded = set(FRAME_WORDS) | {c for c, _ in COUNTRIES} | {lang for _, lang in COUNTRIES}
    words: list[str] = []
    for word in [w for part in _GRAMMAR_PARTS.values() for w in part] + _EXTRA + ["."]:
        if word not in excluded and word not in words:
            words.append(word)
    return tuple(words)


FILLER_WORDS: tuple[str, ...] = _filler()
GRAMMAR: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in _GRAMMAR_PARTS.items()}
# Sentence templates over GRAMMAR's parts of speech; each sentence in the filler ends with ".".
SENTENCE_TEMPLATES: tuple[tuple[str, ...], ...] = (
    ("det", "noun", "verb", "det", "noun"),
    ("det", "adj", "noun", "verb", "det", "noun"),
    ("det", "noun", "adv", "verb", "det", "adj", "noun"),
    ("det", "adj", "noun", "adv", "verb", "det", "adj", "noun"),
)
