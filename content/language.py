"""Which language a message is written in: Vietnamese (the default) or English.

A message in English is answered in English. Only clear evidence counts: a tone mark or "đ"
makes a message Vietnamese; otherwise English needs English words that are not also common in
Vietnamese typing ("ok", "hello", "hiv", "test" are said in both and decide nothing).
"""

from __future__ import annotations

import re
import unicodedata

# Common English words, and the words of this service's subjects, that are not Vietnamese syllables.
ENGLISH = frozenset(
    """
    i me my mine myself you your yours we our us he him his she her they them their it its
    am is are was were be been being do does did done doing have has had having will would
    shall should can could may might must not no yes yeah yep nope dont doesnt didnt cant wont
    isnt arent wasnt im ive id ill youre theyre thats whats wheres hows
    the a an this that these those there here what where when why how who whom which whose
    and or but if so because about after before since until while with without from into onto
    of off on in at by for to up down out over under again very really just only also too
    some any every all each both more most less much many few lot lots something anything nothing
    someone anyone nobody somebody everyone people person guy guys girl woman women man men
    please thank thanks sorry hello hey hi bye okay
    want need know think feel felt get got give gave go going gone went come came make made
    take took tell told say said ask asked call called help find look see saw keep kept let
    use used work working job jobs money pay paid loan loans school learn training course
    sex had slept sleep partner boyfriend girlfriend husband wife client clients customer boss
    police hospital clinic doctor nurse test tested testing result results positive negative
    pregnant pregnancy period late baby abortion pill pills condom condoms broke broken
    infection infected disease sick pain hurts hurt itchy itch burning discharge sore sores
    blood bleeding drugs drug needle needles meth heroin weed safe scared afraid worried
    confidential private secret family parents delete erase data chat message messages
    kill die dying suicide life live living alone sad depressed anxious stress tired
    beat hit raped rape forced locked passport trafficked sold debt escape home country
    near nearby where free cheap cost price today tonight yesterday last night week month ago
    now still yet already ever never always often sometimes friend friends talk speak real
    human bot anybody there mean does how long main menu send nudes good morning robot pls join group
    profit cooking anywhere hiding here best tell show give know any
    which whats wheres cost much many someone somewhere foreigner foreign english speak
    rights dating stop stopped moving move arvs treatment prevent prevention risk risky
    symptoms symptom check checked clinic clinics night late morning evening
    """.split()
)
# Vietnamese words typed without marks that are not English words.
VIETNAMESE = frozenset(
    """
    em anh chi toi minh tui ban khong ko k dc duoc roi nhu the nao gi j la cua cho voi va hay thi
    ma bi nay do kia nhung cac mot nguoi oi nhe nha nhi vay day dau luc ra vao len xuong ve sao
    bao gio hom mai xin cam on muon can hoi biet lam di co chua dang se da rat qua lai moi van
    con nua ai sao vs mik mk hok bit mun xn bcs ck vk ny ntn bn ak ah uh
    """.split()
)
_WORD = re.compile(r"[a-z']+")


def has_vietnamese_marks(text: str) -> bool:
    """Any letter with a Vietnamese tone mark or diacritic, or "đ"."""
    for ch in unicodedata.normalize("NFD", text.lower()):
        if ch == "đ" or unicodedata.category(ch) == "Mn":
            return True
    return False


def detect(text: str) -> str | None:
    """ "vi" or "en" when the message clearly is in it, else None (short or mixed messages)."""
    if has_vietnamese_marks(text):
        return "vi"
    words = [w.replace("'", "") for w in _WORD.findall(text.lower())]
    if not words:
        return None
    english = sum(word in ENGLISH for word in words)
    vietnamese = sum(word in VIETNAMESE and word not in ENGLISH for word in words)
    if english >= 4 and english >= 3 * vietnamese:
        return "en"  # "… we are in ho chi minh": a place name is not Vietnamese writing
    if vietnamese >= 2 or (vietnamese and vietnamese >= english):
        return "vi"
    if english >= 3 and english >= 2 * vietnamese and english >= 0.5 * len(words):
        return "en"
    # Two words are enough when both are English and one of them is not also used in Vietnamese
    # typing ("ok", "hello", "menu", "test", "bye" are said in both).
    if english >= 2 and vietnamese == 0 and len(words) <= 3 and any(w not in _LOANWORDS for w in words if w in ENGLISH):
        return "en"
    return None


_LOANWORDS = frozenset(
    """ok okay hello hi hey menu test hiv prep pep bye thanks thank sorry help sex online shop ship love
    baby boy girl massage karaoke bar hotel sugar daddy money condom app zalo facebook fb check
    stress free""".split()
)
