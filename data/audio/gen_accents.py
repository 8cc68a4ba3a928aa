"""Foreign-accented English spoken digits from speech synthesisers of other languages.

    python data/audio/gen_accents.py data/audio/accent_digits_8k       # a few minutes
    python data/audio/gen_accents.py OUT --per-voice 6 --seed 0 --rate 8000

Why: a classifier trained on a few real speakers and English synthetic voices mishears people
whose first language is not English (FSDD's nicolas, a French speaker: seven heard as six,
three as two).  A speaker of another language says "seven" with that language's sounds; a
synthesiser of that language reading the word respelled in its own spelling does much the
same.  Each digit is respelled once per language (``RESPELLINGS``: how a speaker of that
language would write what they say, e.g. French ``sévène``, Hindi ``सेवन``), then spoken by
espeak-ng's voice for the language (``ESPEAK``, with a random voice variant, speed and
pitch) and by festival's voices of the language (``FESTIVAL``: diphone and HTS voices
recorded from real people; random duration stretch, and pitch moved by sox), plus festival's
American English ``ked`` voice reading the English words.  Read in their own spelling, these
voices say Italian or Czech words ("nine" as ni-ne): respelling is what makes them English.

Every clip is trimmed of leading and trailing silence (50 ms kept), resampled to ``--rate``
and written as 16-bit FLAC to ``OUT/<engine>/<voice>_<digit>_<n>.flac``; ``OUT/manifest.csv``
(``path,label,group,engine,voice``; group = engine:voice, so a whole voice can be held out)
is written last and atomically.  With sox in repeatable mode a seed gives the same clips.

Needs the Debian packages espeak-ng, festival, sox and the festival voices named in
``FESTIVAL`` (``apt-get install espeak-ng sox festival festvox-kdlpc16k festvox-italp16k
festvox-itapc16k festvox-czech-dita festvox-czech-machac festvox-suopuhe-lj
festvox-suopuhe-mv festvox-ca-ona-hts festvox-ru``).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from make_digits import write_manifest  # noqa: E402  (atomic, the generated set's columns)

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# zero..nine as a speaker of each language would spell what they say (the language's own
# letters for English sounds it lacks: German w for v, Spanish b for v, Swahili's final vowels)
RESPELLINGS = {
    "fr": "ziro ouane tou tri fôr faïve sixe sévène eïte naïne",
    "de": "siro uan tu sri for faif siks sewen eet nain",
    "es": "siro uan tu tri for faif siks seben eit nain",
    "it": "ziro uan tu tri for faiv sics seven eit nain",
    "pt": "ziro uan tu tri for faiv siks séven eit nain",
    "pl": "ziro łan tu tri for fajw siks sewen ejt najn",
    "nl": "ziro wan toe trie foor faaif siks seven eet najn",
    "tr": "ziro van tu tri for fayv siks seven eyt nayn",
    "id": "ziro wan tu tri for faif siks seven eit nain",
    "sw": "ziro wani tu thri fo faivu siksi seveni eiti naini",
    "hi": "ज़ीरो वन टू थ्री फ़ोर फ़ाइव सिक्स सेवन एट नाइन",
    "ru": "зиро уан ту сри фо файв сикс сэвэн эйт найн",
    "ja": "ゼロ ワン ツー スリー フォー ファイブ シックス セブン エイト ナイン",
    "cs": "ziro uan tu tri for fajv siks sevn ejt najn",
    "fi": "siiro uan tuu trii foor faiv siks seven eit nain",
    "ca": "ziro uan tu tri for faiv sics seven eit nain",
    "en": " ".join(DIGITS),
}
ESPEAK = ("fr", "de", "es", "it", "pt", "pl", "nl", "tr", "id", "sw", "hi", "ru", "ja")
FESTIVAL = {"ked_diphone": "en", "lp_diphone": "it", "pc_diphone": "it", "czech_dita": "cs",
            "czech_machac": "cs", "czech_ph": "cs", "hy_fi_mv_diphone": "fi",
            "suo_fi_lj_diphone": "fi", "upc_ca_ona_hts": "ca", "msu_ru_nsh_clunits": "ru"}
NEEDED = ("espeak-ng", "text2wave", "sox")
# espeak-ng voice variants that sound like people (gen_digits.py drops the same novelty ones)
NOVELTY = ("whisper", "Demonic", "Robosoft", "UniversalRobot", "Half-Life", "croak",
           "anikaRobot", "klatt", "Storm", "Tweaky")


def espeak_variants() -> list:
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True,
                         check=True).stdout.splitlines()[1:]
    names = sorted(line.split()[3] for line in out if line.strip())
    return [v for v in names if not any(b in v for b in NOVELTY)]


def synthesise(engine: str, voice: str, word: str, wav: Path, rng: random.Random,
               variants: list) -> str:
    """Speak ``word`` into ``wav``; returns the voice as used (espeak-ng: with its variant)."""
    if engine == "espeak":
        var = rng.choice(variants + [None])
        used = voice + (f"+{var}" if var else "")
        cmd = ["espeak-ng", "-v", used, "-s", str(rng.randint(120, 200)),
               "-p", str(rng.randint(20, 80)), "-w", str(wav), word]
        subprocess.run(cmd, check=True, capture_output=True)
        return used
    stretch = round(rng.uniform(0.85, 1.2), 3)
    subprocess.run(["text2wave", "-eval", f"(voice_{voice})",
                    "-eval", f"(Parameter.set 'Duration_Stretch {stretch})", "-o", str(wav)],
                   input=word.encode(), check=True, capture_output=True)
    return voice


def finish(wav: Path, dest: Path, rate: int, cents: int) -> None:
    """wav -> dest: pitch moved by ``cents``, silence trimmed at both ends (50 ms kept),
    resampled to ``rate``, mono 16-bit FLAC."""
    subprocess.run(["sox", str(wav), "-c", "1", "-b", "16", str(dest), "pitch", str(cents),
                    "silence", "1", "0.01", "0.5%", "reverse", "silence", "1", "0.01", "0.5%",
                    "reverse", "pad", "0.05", "0.05", "rate", str(rate)],
                   check=True, capture_output=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, nargs="?", default=HERE / "accent_digits_8k")
    ap.add_argument("--per-voice", type=int, default=6, help="clips per digit and voice")
    ap.add_argument("--rate", type=int, default=8000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    missing = [b for b in NEEDED if shutil.which(b) is None]
    if missing:
        print(f"gen_accents: {', '.join(missing)} not found; apt-get install espeak-ng sox "
              f"festival and the festival voices listed in this script's docstring",
              file=sys.stderr)
        return 2
    rng = random.Random(a.seed)
    variants = espeak_variants()
    voices = [("espeak", v, v) for v in ESPEAK] + [("festival", v, lang)
                                                    for v, lang in FESTIVAL.items()]
    os.environ["SOX_OPTS"] = (os.environ.get("SOX_OPTS", "") + " -R").strip()  # repeatable dither
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "raw.wav"
        for engine, voice, lang in voices:
            (a.out / engine).mkdir(parents=True, exist_ok=True)
            for digit, word in zip(DIGITS, RESPELLINGS[lang].split()):
                for n in range(a.per_voice):
                    used = synthesise(engine, voice, word, wav, rng, variants)
                    dest = a.out / engine / f"{voice}_{digit}_{n}.flac"
                    finish(wav, dest, a.rate, rng.randint(-300, 300) if engine == "festival" else 0)
                    rows.append({"path": f"{engine}/{dest.name}", "label": digit,
                                 "group": f"{engine}:{voice}", "engine": engine, "voice": used})
    write_manifest(rows, a.out / "manifest.csv")
    print(f"wrote {len(rows)} clips of {len(voices)} voices at {a.rate} Hz to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
