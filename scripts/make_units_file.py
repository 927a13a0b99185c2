"""Generate bot/directory/hanoi.yml, the bundled Hà Nội units directory.

    .venv/bin/python scripts/make_units_file.py            # rewrite the file
    .venv/bin/python scripts/make_units_file.py --check    # exit 1 if it is out of date

The 126 wards and communes of the 2025 map come from `vietnam-provinces`; their codes are
those of bot/nlu/location.py (taken from `vietnamadminunits`, which disagrees with
`vietnam-provinces` on 29 of them), joined on the full name, so that a ticket's `ward_code`
finds its ward unit. The city bodies and the routing rules are written below, by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
import unicodedata
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.directory.loader import BUNDLED_FILE  # noqa: E402
from bot.nlu.location import gazetteer  # noqa: E402

COMMAND = ".venv/bin/python scripts/make_units_file.py"
CITY = "ubnd-tp"  # the root: overdue tickets of the wards and city bodies escalate to it


@dataclass(frozen=True)
class Body:
    """A city body or company, with why it is in the directory (written as YAML comments)."""

    id: str
    name: str
    kind: str
    parent: str | None
    note: str = ""
    intake: bool = False


# Names as of the 2025 reorganisation (Sở merged on 1 March 2025; two-tier local government,
# no districts, from 1 July 2025). Police and the water company do not answer to the City's
# People's Committee; their `parent` here is only where the app escalates overdue tickets.
BODIES = (
    Body(CITY, "UBND Thành phố Hà Nội", "city", None, "Ủy ban nhân dân Thành phố: the root"),
    Body(
        "vp-ubnd-tp",
        "Văn phòng UBND Thành phố Hà Nội",
        "city",
        CITY,
        "city intake: tickets no rule routes (flagged) and citizens' requests for a person",
        intake=True,
    ),
    Body(
        "thanh-tra-tp",
        "Thanh tra Thành phố Hà Nội",
        "city",
        CITY,
        "complaints about officials (tiếp công dân, khiếu nại, tố cáo)",
    ),
    Body(
        "so-xay-dung",
        "Sở Xây dựng Hà Nội",
        "city",
        CITY,
        "construction order, urban infrastructure; since 1 March 2025 also the former Sở Giao "
        "thông vận tải (roads, traffic lights and signs, parking)",
    ),
    Body(
        "so-nong-nghiep-moi-truong",
        "Sở Nông nghiệp và Môi trường Hà Nội",
        "city",
        CITY,
        "the former Sở Tài nguyên và Môi trường and Sở Nông nghiệp và Phát triển nông thôn "
        "(merged 1 March 2025): waste, pollution, rivers and lakes",
    ),
    Body(
        "so-noi-vu",
        "Sở Nội vụ Hà Nội",
        "city",
        CITY,
        "administrative reform and civil-service discipline (with the former Sở Lao động - "
        "Thương binh và Xã hội since 1 March 2025)",
    ),
    Body(
        "tt-phuc-vu-hcc-tp",
        "Trung tâm Phục vụ hành chính công Thành phố Hà Nội",
        "city",
        CITY,
        "receives the city's procedure files for its departments and, by its own notice of "
        "25/3/2025, complaints about delayed files, which it urges, checks and controls "
        "(hotline 024.1022 branch 7, tthtcskh_tthcc@hanoi.gov.vn, ttpvhcc.hanoi.gov.vn); "
        "an administrative body under the City's People's Committee (Nhân Dân, 25/3/2025, "
        "nhandan.vn/ha-noi-lap-duong-day-nong-tiep-nhan-kien-nghi-ve-cham-xu-ly-cac-ho-so-lan-"
        "xanh-post867770.html; Chinhphu.vn, 1/7/2025: linked with all 126 wards, 30 branches)",
    ),
    Body("cong-an-tp", "Công an Thành phố Hà Nội", "city", CITY, "parent of its two departments"),
    Body(
        "pccc-cong-an-tp",
        "Phòng Cảnh sát PCCC và CNCH – Công an Thành phố Hà Nội",
        "city",
        "cong-an-tp",
        "Phòng Cảnh sát phòng cháy, chữa cháy và cứu nạn, cứu hộ: fire hazards",
    ),
    Body(
        "csgt-cong-an-tp",
        "Phòng Cảnh sát giao thông – Công an Thành phố Hà Nội",
        "city",
        "cong-an-tp",
        "traffic order when no ward is known",
    ),
    Body(
        "nuoc-sach-ha-noi",
        "Công ty TNHH MTV Nước sạch Hà Nội",
        "company",
        "so-xay-dung",
        "water supply (Hawacom); Sở Xây dựng oversees water supply, hence the parent",
    ),
)


@dataclass(frozen=True)
class Rule:
    categories: tuple[str, ...]
    unit: str  # a unit id or "ward"
    note: str


# First match wins. Rules to "ward" skip a ticket without a ward: its fallback rule follows.
RULES = (
    Rule(
        ("water",),
        "nuoc-sach-ha-noi",
        "Hawacom supplies the central wards; other parts of the city have other suppliers "
        "(e.g. Viwaco, Nước sạch số 2 Hà Nội, Nước sạch Sông Đà). No installed package maps "
        "wards to suppliers, so every water ticket goes to Hawacom, which forwards it; add "
        "`ward:` rules above this one to send a ward's tickets to its own supplier.",
    ),
    Rule(("fire_safety",), "pccc-cong-an-tp", "fire hazards are the fire police's, ward or not"),
    Rule(
        ("misconduct",),
        "thanh-tra-tp",
        "complaints about officials go to the inspectorate, never to the officials' own unit",
    ),
    Rule(
        ("sidewalk", "construction", "waste", "infrastructure", "parking", "other"),
        "ward",
        "since July 2025 the ward or commune People's Committee handles local order, "
        "construction, sanitation, small infrastructure and parking, and sorts the rest",
    ),
    Rule(
        ("pollution",),
        "ward",
        "most pollution complaints are local (karaoke and night-works noise, smoke, smell, "
        "dust), which the ward sanctions; large rivers and lakes without a ward go to Sở NN&MT "
        "below, and a ward forwards what is beyond it",
    ),
    Rule(
        ("traffic",),
        "ward",
        "local traffic order is the ward's, working with the ward police, and it forwards "
        "broken lights and signs to Sở Xây dựng; without a ward: the traffic police, below",
    ),
    Rule(
        ("procedure_delay",),
        "ward",
        "since July 2025 most procedures are decided at the ward, whose chairman answers for "
        "its delays; without a ward (a city-level procedure) the city's public administrative "
        "service centre, below, which takes in those files and complaints about their delays",
    ),
    Rule(
        ("sidewalk", "construction", "infrastructure", "parking"),
        "so-xay-dung",
        "no ward known: the city body for urban order and infrastructure",
    ),
    Rule(("waste", "pollution"), "so-nong-nghiep-moi-truong", "no ward known"),
    Rule(("traffic",), "csgt-cong-an-tp", "no ward known"),
    Rule(
        ("procedure_delay",),
        "tt-phuc-vu-hcc-tp",
        "no ward known: the centre that receives city-level files and urges delayed ones",
    ),
)


def _quoted(text: str) -> str:
    """A YAML double-quoted scalar (a JSON string is one)."""
    return json.dumps(unicodedata.normalize("NFC", text), ensure_ascii=False)


def _comment(text: str, indent: str) -> list[str]:
    """`text` as YAML comment lines of at most 100 characters."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        if current and len(indent) + 2 + len(current) + 1 + len(word) > 100:
            lines.append(f"{indent}# {current}")
            current = word
        else:
            current = f"{current} {word}".strip()
    if current:
        lines.append(f"{indent}# {current}")
    return lines


def ward_units() -> list[tuple[str, str]]:
    """(ward code, full name) of the 126 units of 2025, codes as the gazetteer has them."""
    from vietnam_provinces import ProvinceCode
    from vietnam_provinces import Ward as VPWard

    code_of = {unicodedata.normalize("NFC", w.name): w.code for w in gazetteer().wards}
    out = []
    for ward in VPWard.iter_by_province(ProvinceCode.P_01):
        name = unicodedata.normalize("NFC", ward.name)
        if name not in code_of:
            raise SystemExit(f"{name}: not in the gazetteer (bot/nlu/location.py)")
        out.append((code_of[name], name))
    if len(out) != 126 or len({code for code, _ in out}) != 126:
        raise SystemExit(f"expected 126 distinct wards and communes, got {len(out)}")
    return sorted(out)


HEADER = f"""\
# Hà Nội units directory (CIVICBOT_UNITS_FILE): responsible units, routing rules, officials.
#
# GENERATED by `{COMMAND}`: edit that script, not this file,
# or copy this file, edit the copy and load it with `civicbot units import FILE`.
# Wards and communes: the 126 units of the 2025 map from vietnam-provinces {{vp}}, with the
# ward codes of bot/nlu/location.py (vietnamadminunits). City bodies: written by hand.
#
# Format (checked by `civicbot units import`, which reports every error with its line):
#   units:                       every responsible unit
#     - id: so-xay-dung          lowercase letters, digits, "-" ("ward" is reserved)
#       name: Sở Xây dựng Hà Nội
#       kind: city               ward | city | company
#       parent: ubnd-tp          where overdue tickets escalate (omitted only for the root)
#       intake: true             optional; exactly one unit: gets what no rule routes
#       ward_code: "00004"       kind ward only: its 2025 ward code, quoted
#   rules:                       first match wins, in file order
#     - category: water          one category or a list; omitted: any (even none)
#       unit: nuoc-sach-ha-noi   a unit id, or `ward`: the People's Committee of the
#                                ticket's ward (skipped when the ticket has no ward)
#       ward: "00004"            optional: only tickets in this ward (or a list of wards)
#   officials:                   optional; accounts are linked later with invite codes
#     - name: Nguyễn Văn A
#       unit: ubnd-00004
#       role: handler            handler | supervisor | leader (default handler)
# A ticket that no rule matches goes to the intake unit, flagged `unrouted`.
"""


def render() -> str:
    """The whole file."""
    lines = [HEADER.format(vp=version("vietnam-provinces")), "units:"]
    lines.append("  # City bodies (names as of the 2025 reorganisation).")
    for body in BODIES:
        lines.extend(_comment(body.note, "  ") if body.note else [])
        lines.append(f"  - id: {body.id}")
        lines.append(f"    name: {_quoted(body.name)}")
        lines.append(f"    kind: {body.kind}")
        if body.parent:
            lines.append(f"    parent: {body.parent}")
        if body.intake:
            lines.append("    intake: true")
    lines.append("")
    lines.append(f"  # The 126 wards and communes (2025), by code; they escalate to {CITY}.")
    for code, name in ward_units():
        lines.append(f"  - id: ubnd-{code}")
        lines.append(f"    name: {_quoted('UBND ' + name)}")
        lines.append("    kind: ward")
        lines.append(f"    parent: {CITY}")
        lines.append(f'    ward_code: "{code}"')
    lines.append("")
    lines.append("rules:")
    for rule in RULES:
        lines.extend(_comment(rule.note, "  "))
        categories = rule.categories[0] if len(rule.categories) == 1 else rule.categories
        shown = categories if isinstance(categories, str) else f"[{', '.join(categories)}]"
        lines.append(f"  - category: {shown}")
        lines.append(f"    unit: {rule.unit}")
    lines.append(
        "  # `other` without a ward: no rule on purpose, so it reaches the intake, flagged."
    )
    lines.append("")
    lines.append("# Officials are added with `civicbot official invite` (or listed here).")
    lines.append("officials: []")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check, compare) bot/directory/hanoi.yml."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = BUNDLED_FILE.read_text(encoding="utf-8") if BUNDLED_FILE.exists() else ""
        if current != text:
            print(f"{BUNDLED_FILE} is out of date: run {COMMAND}", file=sys.stderr)
            return 1
        return 0
    BUNDLED_FILE.write_text(text, encoding="utf-8")
    print(f"wrote {BUNDLED_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
