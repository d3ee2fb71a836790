"""``neonpro noshow``: train each clinic's no-show model, evaluate it, score what is coming."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from neonpro.domain.actors import SystemActors
from neonpro.domain.vocabulary import NoShowModelKind
from neonpro.entrypoints.cli._common import container, context, out, print_json, typer_app

if TYPE_CHECKING:
    from neonpro.bootstrap import Container
    from neonpro.services import noshow

app = typer_app(help="No-show risk: train, evaluate, score.", no_args_is_help=True)
ACTOR = SystemActors.CLI
JsonFlag = Annotated[bool, typer.Option("--json")]
ClinicOption = Annotated[uuid.UUID | None, typer.Option(
    help="One clinic (default: every clinic)")]
Holdout = Annotated[int, typer.Option(min=1, max=24, help="Months held out for testing")]


def _clinics(box: Container, clinic: uuid.UUID | None) -> list[uuid.UUID]:
    if clinic is not None:
        return [clinic]
    with box.service_uow(ACTOR) as tx:
        return [c.id for c in tx.clinics.list()]


@app.command()
def train(clinic: ClinicOption = None, holdout_months: Holdout = 3,
          as_json: JsonFlag = False) -> None:
    """Fit and store a new model version per clinic; a clinic with too little history gets
    the prior-only fallback, and the line says so and why. The stored metrics come from a
    time-based hold-out."""
    from neonpro.services import noshow

    results = []
    with container() as box:
        for clinic_id in _clinics(box, clinic):
            with context(f"clinic {clinic_id}"):
                result = noshow.train_model(box.uow(clinic_id, ACTOR),
                                            holdout_months=holdout_months)
            results.append((clinic_id, result))
    if as_json:
        print_json([{"clinic_id": str(c), "model_version": r.model.label, "rows": r.rows,
                     "no_shows": r.no_shows, "fallback": _fallback(r),
                     "metrics": r.model.metrics} for c, r in results])
        return
    for clinic_id, r in results:
        line = (f"clinic {clinic_id}: model {r.model.label} on {r.rows} appointments "
                f"({r.no_shows} no-shows)")
        fallback = _fallback(r)
        skipped = r.model.metrics.get("holdout", {}).get("skipped")
        if fallback is not None:
            line += f"; prior-only fallback, because {fallback}"
        elif r.evaluation is not None:
            line += f"; hold-out {r.evaluation.auc_line()}"
        elif skipped:
            line += f"; hold-out skipped: {skipped}"
        out.print(line, highlight=False, soft_wrap=True)


def _fallback(result: noshow.TrainResult) -> str | None:
    """Why the clinic got the prior-only model, or None for a fitted one."""
    from neonpro.services import noshow

    if result.model.kind is not NoShowModelKind.PRIOR:
        return None
    return str(result.model.metrics.get("reason")
               or noshow.fallback_reason(result.rows, result.no_shows))


@app.command()
def evaluate(clinic: Annotated[uuid.UUID, typer.Option()], holdout_months: Holdout = 3,
             as_json: JsonFlag = False) -> None:
    """Train on the past, test on the last months: AUC, Brier score and the no-show rate per
    risk decile, against the prior-only baseline. Nothing is stored."""
    from neonpro.services import noshow

    with container() as box:
        report = noshow.evaluate_model(box.uow(clinic, ACTOR),
                                       holdout_months=holdout_months)
        recorded = noshow.recorded_performance(box.uow(clinic, ACTOR))
    if as_json:
        print_json({**report.to_json(), "recorded": recorded})
        return
    out.print(f"hold-out from {report.cutoff:%Y-%m-%d}: trained on {report.train_rows}, "
              f"tested on {report.test_rows} appointments ({report.test_no_shows} no-shows)",
              highlight=False, soft_wrap=True)
    table = Table("decile", "appointments", "mean predicted", "no-show rate")
    for d in report.deciles:
        table.add_row(str(d.decile), str(d.count), f"{d.mean_predicted:.1%}",
                      f"{d.no_show_rate:.1%}")
    out.print(table)
    out.print(f"Brier model={report.brier:.3f} baseline={report.baseline_brier:.3f}",
              highlight=False, soft_wrap=True)
    if "auc" in recorded:
        out.print(f"recorded scores: {recorded['predictions_with_outcome']} with an outcome, "
                  f"AUC {recorded['auc']:.2f}, Brier {recorded['brier']:.3f}",
                  highlight=False, soft_wrap=True)
    out.print(report.auc_line(), highlight=False, soft_wrap=True)


@app.command()
def score(clinic: ClinicOption = None,
          days: Annotated[int, typer.Option(min=1, max=90, help="How far ahead")] = 14,
          as_json: JsonFlag = False) -> None:
    """Score every scheduled or confirmed appointment of the coming days with the clinic's
    latest model (run it hourly or daily); appointment versions are left alone."""
    from neonpro.services import noshow

    results = []
    with container() as box:
        for clinic_id in _clinics(box, clinic):
            with context(f"clinic {clinic_id}"):
                results.append((clinic_id, noshow.score_upcoming(box.uow(clinic_id, ACTOR),
                                                                 days=days)))
    if as_json:
        print_json([{"clinic_id": str(c), "model_version": r.model.label, "scored": r.scored,
                     "patients_updated": r.patients_updated} for c, r in results])
        return
    for clinic_id, r in results:
        out.print(f"clinic {clinic_id}: {r.scored} appointment(s) scored with "
                  f"{r.model.label}; {r.patients_updated} patient score(s) changed",
                  highlight=False, soft_wrap=True)
