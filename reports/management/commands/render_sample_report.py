"""``manage.py render_sample_report``: one centre's benchmark report as a PDF and page images.

Used to produce ``docs/sample_report/`` (a sample for readers of the docs)::

    createdb hai_render_sample
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/hai_render_sample
    manage.py migrate
    manage.py render_sample_report --seed-demo --centre PAR --period 2026-10 --out docs/sample_report

``--seed-demo`` fills an *empty* database with the deterministic demo registry
(``registry.demo.seed_registry``, 8 centres / 3000 implantations / seed 1 by
default); a database that already holds data is used as it is. Nothing is
ever deleted. Page images need ``pdftoppm`` (poppler-utils).
"""

import datetime
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from registry.models import ComplicationType
from reports.cohort import cohort
from reports.rendering import build_report_context, render_pdf
from reports.selectors import cases_to_review
from reports.services import completeness_extras, render_stored_html
from sites.models import Centre


def _month(text):
    try:
        return datetime.datetime.strptime(text, "%Y-%m").date()
    except ValueError as error:
        raise CommandError(f"--period '{text}' is not a month; use YYYY-MM, e.g. 2026-10.") from error


def _moment(text):
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError as error:
        raise CommandError(f"--data-cut '{text}': use an ISO date-time, e.g. 2026-11-01T00:00+00:00.") from error
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


def _method_version():
    try:
        from reports.services import METHOD_VERSION
    except ImportError:  # the run machinery is optional for a sample
        return "sample"
    return METHOD_VERSION


class Command(BaseCommand):
    help = "Render one centre's monthly benchmark report to OUT/sample_report.pdf and OUT/page-N.png."

    def add_arguments(self, parser):
        parser.add_argument("--out", default="docs/sample_report", help="Output folder (default docs/sample_report).")
        parser.add_argument("--centre", help="Centre code (default: the first centre by code).")
        parser.add_argument("--period", help="Month reported on, YYYY-MM (default: last month).")
        parser.add_argument("--data-cut", help="ISO date-time of the data cut (default: now).")
        parser.add_argument("--method-version", default=None, help="Printed on the cover (default: the run's).")
        parser.add_argument("--dpi", type=int, default=60, help="Resolution of the page images (default 60).")
        parser.add_argument(
            "--max-pdf-kb", type=int, default=1024, help="Keep the PDF only below this size (default 1024)."
        )
        parser.add_argument(
            "--seed-demo", action="store_true", help="Seed the demo registry first if the database is empty."
        )
        parser.add_argument("--centres", type=int, default=8, help="With --seed-demo: centres (default 8).")
        parser.add_argument(
            "--implantations", type=int, default=3000, help="With --seed-demo: implantations (default 3000)."
        )
        parser.add_argument("--seed", type=int, default=1, help="With --seed-demo: random seed (default 1).")
        parser.add_argument("--context", action="store_true", help="Also write the report's numbers as context.json.")

    def handle(self, *args, **options):
        if options["seed_demo"]:
            self._seed(options)
        data_cut = (
            _moment(options["data_cut"]) if options["data_cut"] else timezone.now().replace(second=0, microsecond=0)
        )
        if options["period"]:
            period_start = _month(options["period"])
        else:
            period_start = (timezone.localdate().replace(day=1) - datetime.timedelta(days=1)).replace(day=1)
        next_month = (period_start.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)
        period_end = next_month - datetime.timedelta(days=1)

        rows = cohort(as_of=data_cut)
        if not rows:
            raise CommandError(
                f"No implantations entered by {data_cut:%Y-%m-%d %H:%M}; seed the database or pass --data-cut."
            )
        codes = sorted({row.centre_code for row in rows})
        centre = options["centre"] or codes[0]
        if centre not in codes:
            raise CommandError(f"Centre {centre!r} has no implantations; choose one of {', '.join(codes)}.")
        types = list(ComplicationType.objects.order_by("name").values("code", "name", "category", "catheter_related"))

        context = build_report_context(
            rows,
            centre_code=centre,
            period_start=period_start,
            period_end=period_end,
            data_cut=data_cut,
            complication_types=types,
            method_version=options["method_version"] or _method_version(),
            extra=completeness_extras(Centre.objects.get(code=centre), data_cut),
        )
        # The stored copy, as a centre downloads it: with its cases to review (demo pseudonyms only).
        context["cases_to_review"] = cases_to_review(
            Centre.objects.get(code=centre),
            period_start=period_start,
            period_end=period_end,
            data_cut=data_cut,
            alarms=context.pop("alarm_implantations", ()),
        )
        pdf = render_pdf(render_stored_html(context))
        out = Path(options["out"])
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("page-*.png"):
            old.unlink()
        pdf_path = out / "sample_report.pdf"
        with tempfile.TemporaryDirectory() as scratch:
            source = Path(scratch) / "report.pdf"
            source.write_bytes(pdf)
            pages = self._pages(source, out, options["dpi"])
        if len(pdf) <= options["max_pdf_kb"] * 1024:
            pdf_path.write_bytes(pdf)
            kept = f"{pdf_path} ({len(pdf) // 1024} KB)"
        else:
            pdf_path.unlink(missing_ok=True)
            kept = f"PDF not kept ({len(pdf) // 1024} KB > {options['max_pdf_kb']} KB)"
        if options["context"]:
            (out / "context.json").write_text(json.dumps(context, indent=1, sort_keys=True))
        self.stdout.write(
            self.style.SUCCESS(
                f"Centre {centre}, {context['period']['label']}, data cut {data_cut:%Y-%m-%d %H:%M}: "
                f"{pages} page images in {out}/; {kept}."
            )
        )

    def _seed(self, options):
        from registry import demo

        if demo.existing_data():
            self.stdout.write("The database already holds data: using it as it is.")
            return
        try:
            demo.seed_registry(options["centres"], options["implantations"], options["seed"])
        except ValueError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(
            f"Seeded the demo registry: {options['centres']} centres, {options['implantations']} implantations."
        )

    def _pages(self, pdf_path, out, dpi):
        if not shutil.which("pdftoppm"):
            raise CommandError("pdftoppm is needed for the page images (apt-get install poppler-utils).")
        with tempfile.TemporaryDirectory() as scratch:
            subprocess.run(["pdftoppm", "-png", "-r", str(dpi), str(pdf_path), f"{scratch}/page"], check=True)
            # pdftoppm pads page numbers to the page count's width: page-01.png … ; name them page-1.png …
            images = sorted(Path(scratch).glob("page-*.png"), key=lambda p: int(p.stem.split("-")[1]))
            for image in images:
                shutil.move(str(image), out / f"page-{int(image.stem.split('-')[1])}.png")
        return len(images)
