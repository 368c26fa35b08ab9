"""The Streaming view's forms: adding a destination (one kind at a time) and re-enabling one.

What the forms offer is read from the action's own tables when the page is drawn (its kinds,
each kind's URL schemes, secrets and settings, its formats, and whether its filter takes search
text), and what they post becomes the body ``POST /v1/destinations`` or ``PATCH`` takes: the
action (:mod:`service.actions.destinations`) validates both alike, and its 4xx, naming the
field, is shown next to that field. Secrets are never written back into a page, not even after
a mistake: they are typed again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData

from service.actions import destinations
from service.errors import ServiceError
from service.page.html import BASE_PATH, attrs, esc
from service.page.layout import alert
from service.page.table import key_label
from service.vocabulary import CATEGORIES, CATEGORY_LABELS, TYPES

STREAM_PATH = f"{BASE_PATH}/streaming"
KIND_LABELS = {"webhook": "Webhook", "splunk_hec": "Splunk HEC", "syslog": "Syslog",
               "elasticsearch": "Elasticsearch"}  # fmt: skip
FORMAT_LABELS = {"entry": "Entry", "ocsf": "OCSF"}
FORMAT_HELP = {"entry": "each entry as /v1/entries shows it", "ocsf": "OCSF events"}
TYPE_LABELS = {"notice": "Notice", "warning": "Warning", "error": "Error"}
FIELD_LABELS = {"name": "Name", "url": "Address (URL)", "kind": "Kind", "format": "Format",
                "settings": "Settings", "secrets": "Secrets", "filter": "Entries to send",
                "filter.q": "Search text", "start": "Start", "position": "Backfill position",
                "status": "Status"}  # fmt: skip
SETTING_LABELS = {"ack": "Indexer acknowledgement (ack)", "ack_timeout_s": "Ack timeout (s)",
                  "timeout_s": "Timeout (s)", "ca_pem": "CA certificates (PEM)",
                  "max_message_bytes": "Largest message (bytes)", "app_name": "APP-NAME",
                  "sourcetype": "Source type"}  # fmt: skip
FLAGS = ("ack",)
"""Settings that are yes or no: a checkbox."""
WHOLE_NUMBERS = ("facility", "max_message_bytes")
"""Settings sent as a number when typed as one (a syslog facility may also be a name)."""
LONG_TEXT = ("ca_pem",)
INLINE = ("name", "url", "format")
"""Fields whose mistakes are shown under their input (the others under their group)."""


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind)


def format_label(fmt: str, *, described: bool = False) -> str:
    label = FORMAT_LABELS.get(fmt, fmt)
    return f"{label} ({FORMAT_HELP[fmt]})" if described and fmt in FORMAT_HELP else label


def field_label(name: str | None) -> str:
    return FIELD_LABELS.get(name or "", key_label(name) if name else "")


def takes_search_text() -> bool:
    """Whether a destination's filter takes search text (``filter.q``): asked of the action's
    own filter validation, so the form follows it."""
    check = getattr(destinations, "_filter", None)
    if check is None:
        return False
    try:
        check({"filter": {"q": "audit"}})
    except ServiceError:
        return False
    return True


@dataclass
class Draft:
    """What was typed into the form to add a destination (its secrets never kept)."""

    kind: str
    name: str = ""
    url: str = ""
    format: str = "entry"
    settings: dict[str, str] = field(default_factory=dict)
    categories: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    q: str = ""
    start: str = "now"
    start_position: str = ""


def _texts(form: FormData, name: str) -> list[str]:
    return [v for v in form.getlist(name) if isinstance(v, str)]


def _text(form: FormData, name: str) -> str:
    found = _texts(form, name)
    return found[-1] if found else ""


def read_draft(form: FormData) -> tuple[Draft, dict[str, str]]:
    """The draft and the secrets typed (``secret.<name>``, the non-empty ones)."""
    settings = {k[len("setting.") :]: v.strip() for k, v in form.multi_items()
                if k.startswith("setting.") and isinstance(v, str) and v.strip()}  # fmt: skip
    secrets = {k[len("secret.") :]: v for k, v in form.multi_items()
               if k.startswith("secret.") and isinstance(v, str) and v}  # fmt: skip
    draft = Draft(
        kind=_text(form, "kind"), name=_text(form, "name"), url=_text(form, "url").strip(),
        format=_text(form, "format") or "entry", settings=settings,
        categories=_texts(form, "category"), types=_texts(form, "type"),
        q=_text(form, "q").strip(), start=_text(form, "start") or "now",
        start_position=_text(form, "start_position").strip(),
    )  # fmt: skip
    return draft, secrets


def _setting(name: str, text: str) -> str | int | float | bool:
    if name in FLAGS:
        return True
    if name in destinations.SECONDS or name in WHOLE_NUMBERS:
        try:
            return int(text)
        except ValueError:
            pass
    if name in destinations.SECONDS:
        try:
            return float(text)
        except ValueError:
            pass
    return text


def _position(text: str) -> int | str:
    try:
        return int(text)
    except ValueError:
        return text  # the action says what it takes


def create_body(draft: Draft, secrets: dict[str, str]) -> dict[str, Any]:
    """The body of ``POST /v1/destinations`` the form stands for."""
    wanted: dict[str, Any] = {}
    if draft.categories:
        wanted["categories"] = draft.categories
    if draft.types:
        wanted["types"] = draft.types
    if draft.q:
        wanted["q"] = draft.q
    start = _position(draft.start_position) if draft.start == "position" else "now"
    return {
        "kind": draft.kind, "name": draft.name, "url": draft.url, "format": draft.format,
        "settings": {k: _setting(k, v) for k, v in draft.settings.items()},
        "secrets": secrets, "filter": wanted, "start": start,
    }  # fmt: skip


def resume_body(form: FormData) -> dict[str, Any]:
    """The ``PATCH`` of a resume: from where it stopped, from now, or from a position."""
    body: dict[str, Any] = {"status": "active"}
    chosen = _text(form, "from")
    if chosen == "now":
        body["position"] = "now"
    elif chosen == "position":
        body["position"] = _position(_text(form, "position").strip())
    return body


def _error_of(error: ServiceError | None, name: str) -> tuple[dict[str, object], str]:
    """The input's attributes and the message under it, when the error is this field's."""
    if error is None or error.field != name:
        return {}, ""
    message = f'<p class="field-error" id="error-{esc(name)}">{esc(error.message)}</p>'
    return {"aria-invalid": "true", "aria-describedby": f"error-{name}"}, message


def without_credentials(url: str) -> str:
    """``url`` without a user and password before its host (``user:token@``): the action
    refuses such a URL, and the form drawn again must not show the secret."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    ends = [at for at in (rest.find(c) for c in "/?#") if at >= 0]
    authority_end = min(ends, default=len(rest))
    host = rest[:authority_end].rpartition("@")[2]
    return f"{scheme}{sep}{host}{rest[authority_end:]}"


def _input(name: str, label: str, value: str, error: ServiceError | None, **more: object) -> str:
    """A labelled text input; ``error`` shown under it when it names the input (or its
    ``field``, given when the API names it otherwise: ``filter.q`` for ``q``)."""
    marks, message = _error_of(error, str(more.pop("field", name)))
    extra = {"id": f"d-{name}", "name": name, "type": "text", "value": value, **more, **marks}
    return (f'<div class="field"><label for="d-{name}">{esc(label)}</label>'
            f"<input{attrs(extra)}>{message}</div>")  # fmt: skip


def _format_select(draft: Draft, error: ServiceError | None) -> str:
    marks, message = _error_of(error, "format")
    options = "".join(
        f"<option{attrs({'value': f, 'selected': f == draft.format})}>"
        f"{esc(format_label(f, described=True))}</option>"
        for f in destinations.FORMATS
    )
    return (f'<div class="field"><label for="d-format">Format</label>'
            f"<select{attrs({'id': 'd-format', 'name': 'format', **marks})}>{options}</select>"
            f"{message}</div>")  # fmt: skip


def _group(name: str, legend: str, inner: str, error: ServiceError | None, help: str = "") -> str:
    marks, message = _error_of(error, name)
    described = f' aria-describedby="error-{esc(name)}"' if marks else ""
    note = f'<p class="help">{help}</p>' if help else ""
    return (f'<fieldset class="group" id="group-{esc(name)}"{described}><legend>{esc(legend)}'
            f"</legend>{note}{message}{inner}</fieldset>")  # fmt: skip


def _secrets(kind: str, error: ServiceError | None) -> str:
    spec = destinations.KINDS[kind]
    if not spec["secrets"]:
        return ""
    inputs = []
    for name in spec["secrets"]:
        required = name in spec["required"]
        label = f"{key_label(name)}{' (required)' if required else ''}"
        inputs.append(
            f'<div class="field"><label for="d-secret-{esc(name)}">{esc(label)}</label>'
            f"<input{attrs({'id': f'd-secret-{name}', 'name': f'secret.{name}'})} "
            f'type="password" autocomplete="new-password" spellcheck="false"></div>'
        )
    help = "Stored encrypted, and never shown again: the list shows only which are set."
    return _group("secrets", "Secrets", "".join(inputs), error, help)


def _settings(draft: Draft, error: ServiceError | None) -> str:
    names = destinations.KINDS[draft.kind]["settings"]
    if not names:
        return ""
    inputs = []
    for name in names:
        label, ident = SETTING_LABELS.get(name, key_label(name)), f"d-setting-{name}"
        value = draft.settings.get(name, "")
        common = {"id": ident, "name": f"setting.{name}"}
        if name in FLAGS:
            box = attrs({**common, "type": "checkbox", "value": "true", "checked": bool(value)})
            inputs.append(f'<div class="field-check"><input{box}>'
                          f'<label for="{ident}">{esc(label)}</label></div>')  # fmt: skip
            continue
        if name in LONG_TEXT:
            control = f"<textarea{attrs({**common, 'rows': 3})}>{esc(value)}</textarea>"
        else:
            control = f"<input{attrs({**common, 'type': 'text', 'value': value})}>"
        inputs.append(f'<div class="field"><label for="{ident}">{esc(label)}</label>'
                      f"{control}</div>")  # fmt: skip
    return _group("settings", "Settings", "".join(inputs), error, "Leave empty for defaults.")


def _checks(name: str, values: tuple[str, ...], labels: dict[str, str], chosen: list[str]) -> str:
    boxes = []
    for value in values:
        ident = f"d-{name}-{value}"
        box = attrs({"id": ident, "type": "checkbox", "name": name, "value": value,
                     "checked": value in chosen})  # fmt: skip
        boxes.append(f'<div class="field-check"><input{box}><label for="{esc(ident)}">'
                     f"{esc(labels.get(value, value))}</label></div>")  # fmt: skip
    return f'<div class="checks">{"".join(boxes)}</div>'


def _filter(draft: Draft, error: ServiceError | None) -> str:
    inner = (
        f'<p class="field-label">Categories</p>'
        f"{_checks('category', CATEGORIES, CATEGORY_LABELS, draft.categories)}"
        f'<p class="field-label">Types</p>{_checks("type", TYPES, TYPE_LABELS, draft.types)}'
    )
    if takes_search_text():
        inner += _input("q", "Search text", draft.q, error, field="filter.q",
                        placeholder="as in the search box")  # fmt: skip
    help = "Nothing ticked: every category, every type."
    return _group("filter", "Entries to send", inner, error, help)


def _start(draft: Draft, error: ServiceError | None) -> str:
    now, backfill = draft.start != "position", draft.start == "position"
    inner = (
        '<div class="field-check"><input id="d-start-now" type="radio" name="start" value="now"'
        f'{" checked" if now else ""}><label for="d-start-now">From now: entries added from '
        "now on</label></div>"
        '<div class="field-check"><input id="d-start-position" type="radio" name="start" '
        f'value="position"{" checked" if backfill else ""}><label for="d-start-position">'
        "From a position of the log (a backfill; 0: from the first entry)</label></div>"
        f"{_input('start_position', 'Position', draft.start_position, None, inputmode='numeric')}"
    )
    return _group("start", "Start", inner, error)


def create_form(draft: Draft, csrf: str, error: ServiceError | None) -> str:
    """The form adding a destination of ``draft.kind``, with the error next to its field."""
    spec = destinations.KINDS[draft.kind]
    schemes = " or ".join(f"{s}://…" for s in spec["schemes"])
    summary = ""
    if error is not None:
        title = f"{field_label(error.field)}: " if error.field else ""
        summary = alert(error.message, title=f"{title}the destination was not added.")
        marks = attrs({"id": "form-error", "data-field": error.field})
        summary = summary.replace("<div", f"<div{marks}", 1)
    name = _input("name", "Name", draft.name, error, required=True, maxlength=2000)
    url = _input("url", "Address (URL)", without_credentials(draft.url), error, required=True,
                 inputmode="url", placeholder=schemes, spellcheck="false")  # fmt: skip
    return (
        f'<form method="post" action="{STREAM_PATH}/new" class="card destination-form">'
        f'{summary}<input type="hidden" name="csrf" value="{esc(csrf)}">'
        f'<input type="hidden" name="kind" value="{esc(draft.kind)}">{name}{url}'
        f"{_format_select(draft, error)}{_secrets(draft.kind, error)}{_settings(draft, error)}"
        f"{_filter(draft, error)}{_start(draft, error)}"
        '<div class="form-actions"><button type="submit" class="button button-primary">'
        f'Add the destination</button> <a class="button button-quiet" href="{STREAM_PATH}">'
        "Cancel</a></div></form>"
    )
