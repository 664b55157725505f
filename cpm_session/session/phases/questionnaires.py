"""The visit's questionnaires (NRS, FIQR, HADS, ... as named in the protocol), one item per screen."""

from __future__ import annotations

from typing import Any

from cpm_session.config import questionnaires as qmod
from cpm_session.session.context import Context
from cpm_session.ui.base import Choice

INSTRUCTION_S = 5.0
ITEM_TIMEOUT_FACTOR = 3


def item_choice(q: qmod.Questionnaire, item: qmod.Item, timeout_s: float | None = None) -> Choice:
    """Return the multiple-choice screen of one questionnaire item."""
    return Choice(question=item.text, options=[o.label for o in item.options], timeout_s=timeout_s,
                  values=tuple(float(o.value) for o in item.options))


def preflight(ctx: Context) -> list[qmod.Questionnaire]:
    """Load every questionnaire of the protocol (a person at the screen needs the licensed wording files)."""
    try:
        return [qmod.load_questionnaire(n, require_wording=ctx.settings.require_licensed_wording)
                for n in ctx.p.questionnaires.names]
    except qmod.MissingWordingError as e:  # name the protocol file, the second way out
        raise qmod.MissingWordingError(e.name, e.path, protocol=ctx.p.path) from None


def run(ctx: Context) -> tuple[dict[str, Any], str]:
    """Ask every item; score each questionnaire; log one `questionnaire` event per questionnaire."""
    if not ctx.p.questionnaires.names:
        return {}, "next"
    ctx.ui.show("questionnaires_intro", ctx.p.texts.questionnaires_intro)
    ctx.wait(INSTRUCTION_S)
    results: dict[str, Any] = {}
    for q in preflight(ctx):
        answers: dict[str, Any] = {}
        for item in q.items:
            idx = ctx.ui.choose(item_choice(q, item, ctx.p.ratings.timeout_s * ITEM_TIMEOUT_FACTOR))
            answers[item.id] = qmod.value_of_choice(item, idx)
        res = qmod.questionnaire_result(q, answers, ctx.p.questionnaires.entry)
        ctx.log("questionnaire", name=q.name, **res)
        results[q.name] = res
    if ctx.folder is not None:
        ctx.folder.update_header(questionnaires=results)
    return results, "next"
