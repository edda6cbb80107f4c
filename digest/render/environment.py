"""The Jinja2 environment digests are rendered with (user overrides first, autoescape, StrictUndefined), template
rendering that turns Jinja's errors into ``RenderError``, and CSS inlining: the adapter for jinja2 and css-inline."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import css_inline
import jinja2

from digest.errors import RenderError
from digest.render.textmap import clean as _clean
from digest.render.textmap import md_inline as _md_inline

__all__ = ["inline_css", "make_environment", "render_template", "templates_dirs"]


def templates_dirs(override_dir: Path | None = None) -> list[Path]:
    """Template folders in search order: the user's override, then the packaged (or checkout) defaults."""
    here = Path(__file__).resolve().parents[1]  # the digest package
    dirs = [override_dir] if override_dir is not None else []
    installed, checkout = here / "templates", here.parent / "templates"
    dirs.append(installed if installed.is_dir() else checkout)
    return dirs


def make_environment(override_dir: Path | None = None) -> jinja2.Environment:
    """A Jinja2 environment: override folder first, autoescape for .html.j2/.xml.j2, StrictUndefined."""
    if override_dir is not None and not Path(override_dir).is_dir():
        raise RenderError(
            f"template folder {override_dir} does not exist",
            "create it or remove the `templates` setting from the config",
        )
    loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(d)) for d in templates_dirs(override_dir)])
    env = jinja2.Environment(
        loader=loader,
        autoescape=lambda name: name is not None and name.endswith((".html.j2", ".xml.j2")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md"] = _md_inline
    env.filters["clean"] = _clean
    return env


def render_template(env: jinja2.Environment, name: str, ctx: dict[str, Any]) -> str:
    """Template ``name`` rendered with ``ctx``; Jinja's errors become a RenderError saying what to fix."""
    try:
        return env.get_template(name).render(ctx)
    except jinja2.TemplateNotFound as exc:
        raise RenderError(f"template {exc.name} not found", "restore it or fix the override folder") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(
            f"template {exc.filename or name} line {exc.lineno}: {exc.message}", "fix the template syntax"
        ) from exc
    except jinja2.TemplateError as exc:
        raise RenderError(f"template {name} failed: {exc}", "check the variables the template uses") from exc


def inline_css(page: str) -> str:
    """``page`` with its <style> rules inlined into style attributes (@media rules kept; no remote sheets)."""
    try:
        return _inliner().inline(page)
    except Exception as exc:  # css-inline raises its own InlineError and ValueError
        raise RenderError(f"CSS inlining failed: {exc}", "check style.css and the HTML templates") from exc


@lru_cache(maxsize=1)
def _inliner() -> css_inline.CSSInliner:
    return css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
