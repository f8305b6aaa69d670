"""The HTML report: one offline page assembled from *section folders*.

Every part of the pipeline that wants to appear in the report (dataset summaries now,
studies later) writes a section folder holding a ``section.json`` and the files it
references. ``genex report SECTION_DIR... --out results/report`` calls
:func:`build_report`, which validates every section, copies its files to
``<out>/<group>/<section id>/`` and renders ``<out>/index.html``. The page anchor and the
asset folder are qualified by the group, so the dataset ``nsynth`` (group Datasets) and the
study ``nsynth`` (group Studies) never collide; two sections of one group with one id are
an error.

Section format (``section.json``; paths are relative to the section folder)::

    {
      "id": "nsynth-sf",              # unique in its group; letters, digits, '.', '_', '-'
      "title": "NSynth-SF (embedded single notes)",
      "group": "Datasets",            # optional, default "Results"; groups are ordered by
                                      # params["group_order"] (default Datasets, Studies),
                                      # then alphabetically
      "order": 10,                    # optional, default 0; order within the group
      "blocks": [                     # shown in this order
        {"type": "text", "text": "Plain text or a little markdown: blank lines separate "
                                 "paragraphs, '- ' starts a list item, **bold**, *italic*, "
                                 "`code`, [link](https://...)."},
        {"type": "table", "caption": "optional", "columns": ["a", "b"],
         "rows": [[1, 2.5], ["x", null]]},   # each row as long as columns
        {"type": "figure", "path": "fig.png", "caption": "optional"},   # png/jpg/gif/svg/webp
        {"type": "audio", "path": "x.wav", "caption": "optional"},      # wav/mp3/ogg/flac
        {"type": "metrics", "path": "stats.json", "caption": "optional"} # JSON object, shown
      ]                                                                  # flattened, folded
    }

Nothing else is allowed at the top level or in a block, so a typo is an error rather than
a silently missing part of the report. A path must stay inside its section folder.
"""

from __future__ import annotations

import html as _html
import json
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from genex.pipeline import atomic_dir, provenance, read_json

DEFAULT_GROUP = "Results"
DEFAULT_GROUP_ORDER = ("Datasets", "Studies")
FIGURE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"}
AUDIO_TYPES = {".wav": "audio/wav", ".mp3": "audio/mpeg", ".ogg": "audio/ogg",
               ".flac": "audio/flac"}
TOP_KEYS = {"id": True, "title": True, "blocks": True, "group": False, "order": False}
BLOCK_KEYS: dict[str, dict[str, bool]] = {  # type -> {key: required}
    "text": {"text": True},
    "table": {"columns": True, "rows": True, "caption": False},
    "figure": {"path": True, "caption": False},
    "audio": {"path": True, "caption": False},
    "metrics": {"path": True, "caption": False},
}
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class SectionError(ValueError):
    """A section.json that does not follow the section format, or a missing file."""


@dataclass
class Section:
    """A validated section: its folder and the contents of its section.json."""

    folder: Path
    id: str
    title: str
    group: str
    order: float
    blocks: list[dict[str, Any]]

    @property
    def folder_name(self) -> str:
        """Where its files go in the report: ``<group slug>/<id>``."""
        return f"{group_slug(self.group)}/{self.id}"

    @property
    def anchor(self) -> str:
        """The page anchor. A group slug has no '--' and does not end in '-', and an id starts
        with a letter or digit, so different (group, id) pairs never give the same anchor."""
        return f"sec-{group_slug(self.group)}--{self.id}"


def group_slug(group: str) -> str:
    """A group's name as a folder name: lower case, runs of other characters as one '-'."""
    return re.sub(r"[^a-z0-9]+", "-", group.lower()).strip("-") or "group"


# ---------------------------------------------------------------------------- validation

def load_section(folder: Path) -> Section:
    """Read and validate ``folder/section.json``; SectionError names the file and the problem."""
    path = Path(folder) / "section.json"
    data = read_json(path)  # FileNotFoundError / ValueError naming the file
    if not isinstance(data, dict):
        raise SectionError(f"{path}: expected a JSON object, got {type(data).__name__}")
    _check_keys(data, TOP_KEYS, f"{path}")
    where = f"{path} (section {data.get('id')!r})"
    if not isinstance(data["id"], str) or not _ID.match(data["id"]):
        raise SectionError(f"{path}: 'id' must be a string of letters, digits, '.', '_', '-' "
                           f"(it names a folder), got {data['id']!r}")
    if not isinstance(data["title"], str) or not data["title"].strip():
        raise SectionError(f"{where}: 'title' must be a non-empty string")
    group = data.get("group", DEFAULT_GROUP)
    if not isinstance(group, str) or not group.strip():
        raise SectionError(f"{where}: 'group' must be a non-empty string")
    order = data.get("order", 0)
    if isinstance(order, bool) or not isinstance(order, (int, float)):
        raise SectionError(f"{where}: 'order' must be a number, got {order!r}")
    if not isinstance(data["blocks"], list):
        raise SectionError(f"{where}: 'blocks' must be a list")
    for i, block in enumerate(data["blocks"]):
        _check_block(block, Path(folder), f"{where}: block {i}")
    return Section(Path(folder), data["id"], data["title"], group, order, data["blocks"])


def _check_keys(data: dict, spec: dict[str, bool], where: str) -> None:
    missing = [k for k, required in spec.items() if required and k not in data]
    if missing:
        raise SectionError(f"{where}: missing {', '.join(repr(k) for k in missing)}")
    extra = sorted(set(data) - set(spec))
    if extra:
        raise SectionError(f"{where}: unknown key(s) {', '.join(map(repr, extra))}; "
                           f"allowed: {', '.join(spec)}")


def _check_block(block: Any, folder: Path, where: str) -> None:
    if not isinstance(block, dict) or block.get("type") not in BLOCK_KEYS:
        kind = block.get("type") if isinstance(block, dict) else type(block).__name__
        raise SectionError(f"{where}: type must be one of {', '.join(BLOCK_KEYS)}, got {kind!r}")
    kind = block["type"]
    where = f"{where} ({kind})"
    _check_keys({k: v for k, v in block.items() if k != "type"}, BLOCK_KEYS[kind], where)
    if "caption" in block and not isinstance(block["caption"], str):
        raise SectionError(f"{where}: 'caption' must be a string")
    if kind == "text" and not isinstance(block["text"], str):
        raise SectionError(f"{where}: 'text' must be a string")
    if kind == "table":
        _check_table(block, where)
    if "path" in block:
        _check_path(block, folder, where)


def _check_table(block: dict, where: str) -> None:
    columns, rows = block["columns"], block["rows"]
    if not isinstance(columns, list) or not columns:
        raise SectionError(f"{where}: 'columns' must be a non-empty list")
    if not isinstance(rows, list):
        raise SectionError(f"{where}: 'rows' must be a list of lists")
    for j, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(columns):
            raise SectionError(f"{where}: row {j} must be a list of {len(columns)} cells "
                               f"(one per column), got {row!r}")
        if any(isinstance(cell, (dict, list)) for cell in row):
            raise SectionError(f"{where}: row {j} has a nested cell; cells are scalars")


def _check_path(block: dict, folder: Path, where: str) -> None:
    rel = block["path"]
    if not isinstance(rel, str) or not rel:
        raise SectionError(f"{where}: 'path' must be a non-empty string")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts or "\\" in rel:
        raise SectionError(f"{where}: path {rel!r} must be relative and inside the section folder")
    suffix = pure.suffix.lower()
    if block["type"] == "figure" and suffix not in FIGURE_SUFFIXES:
        raise SectionError(f"{where}: figure {rel!r} is not one of {sorted(FIGURE_SUFFIXES)}")
    if block["type"] == "audio" and suffix not in AUDIO_TYPES:
        raise SectionError(f"{where}: audio {rel!r} is not one of {sorted(AUDIO_TYPES)}")
    if block["type"] == "metrics" and suffix != ".json":
        raise SectionError(f"{where}: metrics {rel!r} must be a .json file")
    if not (folder / rel).is_file():
        raise SectionError(f"{where}: referenced file {rel!r} does not exist ({folder / rel})")


# ---------------------------------------------------------------------------- report

def build_report(sections: list[Path], out: Path, params: dict) -> Path:
    """Validate ``sections``, copy their files to ``out/<id>/`` and write ``out/index.html``.

    ``params`` (the config's ``report`` section) may set ``title`` and ``group_order``.
    The whole folder is built aside and renamed onto ``out``, so a failure leaves
    ``out`` as it was. Returns the path of index.html.
    """
    params = params or {}
    loaded = [load_section(Path(folder)) for folder in sections]
    _check_unique_ids(loaded)
    ordered = sort_sections(loaded, params.get("group_order", DEFAULT_GROUP_ORDER))
    with atomic_dir(out) as tmp:
        views = [_copy_and_view(section, tmp) for section in ordered]
        page = _render_page(views, params)
        (tmp / "index.html").write_text(page, encoding="utf-8")
    return Path(out) / "index.html"


def sort_sections(sections: list[Section], group_order=DEFAULT_GROUP_ORDER) -> list[Section]:
    """Groups in ``group_order`` first, other groups alphabetically; then by order, title."""
    rank = {g: i for i, g in enumerate(group_order)}

    def key(s: Section):
        return (rank.get(s.group, len(rank)), s.group, s.order, s.title, s.id)

    return sorted(sections, key=key)


def _check_unique_ids(sections: list[Section]) -> None:
    """Ids need only be unique within a group (the anchor and folder carry the group)."""
    seen: dict[str, Path] = {}
    for s in sections:
        if s.folder_name in seen:
            raise SectionError(f"{s.folder / 'section.json'}: id {s.id!r} is already used in "
                               f"group {s.group!r} by {seen[s.folder_name] / 'section.json'}")
        seen[s.folder_name] = s.folder


def _copy_and_view(section: Section, out: Path) -> dict:
    """Copy the section's files to ``out/<id>/`` and return what the template shows."""
    blocks = []
    for block in section.blocks:
        view = {"caption": "", **block}  # the template is strict: optional keys get defaults
        if "path" in block:
            dst = out / section.folder_name / block["path"]
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(section.folder / block["path"], dst)
            view["src"] = f"{section.folder_name}/{block['path']}"
        if block["type"] == "figure":
            # the page reserves each image's box before it loads: no jumps while scrolling
            view["width"], view["height"] = image_size(section.folder / block["path"])
        if block["type"] == "audio":
            view["mime"] = AUDIO_TYPES[PurePosixPath(block["path"]).suffix.lower()]
        if block["type"] == "metrics":
            view["rows"] = _metric_rows(section, block["path"])
        if block["type"] == "text":
            view["html"] = render_text(block["text"])
        if block["type"] == "table":
            view["cells"] = format_table(block["rows"], len(block["columns"]))
        blocks.append(view)
    return {"id": section.id, "title": section.title, "group": section.group,
            "anchor": section.anchor, "blocks": blocks}


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels from the image's header (SVG: its width/height or viewBox)."""
    if path.suffix.lower() == ".svg":
        return _svg_size(path)
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:  # reads the header only
            return image.size
    except (UnidentifiedImageError, OSError) as err:
        raise SectionError(f"{path}: not a readable image ({err})") from None


_SVG_LENGTH = r"""\s{}\s*=\s*["']\s*([0-9.]+)\s*(?:px)?\s*["']"""
_SVG_VIEWBOX = r"""viewBox\s*=\s*["']\s*[-0-9.]+[\s,]+[-0-9.]+[\s,]+([0-9.]+)[\s,]+([0-9.]+)"""


def _svg_size(path: Path) -> tuple[int, int]:
    # a regular expression over the root tag, not an XML parser: nothing in the file is expanded
    head = path.read_text(encoding="utf-8", errors="replace")[:4096]
    tag = re.search(r"<svg\b[^>]*>", head)
    if tag:
        width = re.search(_SVG_LENGTH.format("width"), tag.group(0))
        height = re.search(_SVG_LENGTH.format("height"), tag.group(0))
        if width and height:
            return round(float(width.group(1))), round(float(height.group(1)))
        box = re.search(_SVG_VIEWBOX, tag.group(0))
        if box:
            return round(float(box.group(1))), round(float(box.group(2)))
    raise SectionError(f"{path}: an SVG figure needs width and height (in px) or a viewBox "
                       f"on its <svg> tag, so the page can reserve its box")


def _metric_rows(section: Section, rel: str) -> list[tuple[str, Any]]:
    data = read_json(section.folder / rel)
    if not isinstance(data, dict):
        raise SectionError(f"{section.folder / rel}: metrics of section {section.id!r} must be "
                           f"a JSON object")
    return flatten(data)


def flatten(data: dict, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dicts as (dotted key, value) rows, keys sorted; lists shown as JSON."""
    rows: list[tuple[str, Any]] = []
    for key in sorted(data, key=str):
        name = f"{prefix}{key}"
        value = data[key]
        if isinstance(value, dict):
            rows += flatten(value, f"{name}.")
        else:
            rows.append((name, json.dumps(value) if isinstance(value, list) else value))
    return rows


def format_cell(value: Any, decimals: int | None = None) -> str:
    """The report's one number formatter.

    Without ``decimals`` (a metrics listing, a lone value): four significant digits, no
    padding. With ``decimals`` (a table column, see :func:`column_decimals`): that many
    decimals for every number of the column, so 68.90 stands under 76.36, not 68.9.
    Thousands get separators; ints outside float columns stay ints.
    """
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if value != value else ("∞" if value > 0 else "−∞")
    if decimals is not None and isinstance(value, (int, float)):
        return f"{value:,.{decimals}f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.4g}"
    return str(value)


MAX_DECIMALS = 4


def column_decimals(values: list[Any]) -> int | None:
    """Decimals for a table column: as many as its most precise float needs at four
    significant digits (at most MAX_DECIMALS). None for a column without floats (ints,
    text): those keep their own form."""
    floats = [v for v in values if isinstance(v, float) and math.isfinite(v)]
    if not floats:
        return None
    needed = []
    for v in floats:
        text = f"{abs(v):.4g}"
        if "e" in text:  # tiny: the cap; huge: no decimals
            needed.append(MAX_DECIMALS if abs(v) < 1 else 0)
        else:
            needed.append(len(text.partition(".")[2]))
    return min(MAX_DECIMALS, max(needed))


def format_table(rows: list[list[Any]], width: int) -> list[list[dict]]:
    """Every cell of a table as {"text", "numeric"}; numbers formatted per column."""
    decimals = [column_decimals([row[j] for row in rows]) for j in range(width)]
    return [[{"text": format_cell(cell, decimals[j]),
              "numeric": isinstance(cell, (int, float)) and not isinstance(cell, bool)}
             for j, cell in enumerate(row)] for row in rows]


_INLINE = [
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
    (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])"), r"<em>\1</em>"),
    (re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+|[^):\s]+)\)"), r'<a href="\2">\1</a>'),
]


def render_text(text: str) -> str:
    """A little markdown to HTML: paragraphs, '- ' lists, bold, italic, code, links.

    The text is HTML-escaped first, so a section cannot inject markup or scripts.
    """
    parts = []
    for para in re.split(r"\n\s*\n", text.strip()):
        lines = [line.strip() for line in para.splitlines() if line.strip()]
        if lines and all(line.startswith(("- ", "* ")) for line in lines):
            items = "".join(f"<li>{_inline(line[2:])}</li>" for line in lines)
            parts.append(f"<ul>{items}</ul>")
        elif lines:
            parts.append(f"<p>{_inline(' '.join(lines))}</p>")
    return "\n".join(parts)


def _inline(text: str) -> str:
    text = _html.escape(text, quote=True)
    for pattern, replacement in _INLINE:
        text = pattern.sub(replacement, text)
    return text


def _render_page(sections: list[dict], params: dict) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["cell"] = format_cell
    groups: list[dict] = []
    for s in sections:
        if not groups or groups[-1]["name"] != s["group"]:
            groups.append({"name": s["group"], "sections": []})
        groups[-1]["sections"].append(s)
    prov = provenance()
    return env.get_template("index.html").render(
        title=params.get("title", "genex report"), groups=groups,
        genex_version=prov["genex_version"], code_version=prov["code_version"])
