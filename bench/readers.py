"""How long reading takes: this project's PDF and HTML readers beside the bare extraction they replace.

    PYTHONPATH=src python bench/readers.py [--pages 60]

The PDF is typeset here with fpdf2 (a running header, a footer, headings, wrapped paragraphs); the
baseline is pypdf's extract_text, which the PDF reader used before issue 12 (and pdfplumber's
lines with their geometry, when it is installed). The HTML page is
generated too; its baseline is BeautifulSoup's get_text. No data is read from outside.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

PARAGRAPH = ("The two governments fund a shared stockpile of legacy chips so that a single factory fire "
             "can no longer halt car production in either country for months at a time. ") * 3


def make_pdf(pages: int) -> bytes:
    from fpdf import FPDF

    class Doc(FPDF):
        def header(self) -> None:
            self.set_font("Helvetica", "", 9)
            self.cell(0, 8, "Alliance Review Quarterly")
            self.ln(12)

        def footer(self) -> None:
            self.set_y(-15)
            self.set_font("Helvetica", "", 9)
            self.cell(0, 10, f"Page {self.page_no()}", align="C")

    pdf = Doc()
    for n in range(pages):
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 16)
        pdf.multi_cell(0, 9, f"Section {n + 1}", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 11)
        for _ in range(4):
            pdf.multi_cell(0, 6, PARAGRAPH, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(3)
    return bytes(pdf.output())


def make_html(blocks: int) -> str:
    rows = "".join(f"<tr><td>{y}</td><td>{y % 97}</td></tr>" for y in range(1900, 1960))
    body = "".join(f"<h2>Part {i}</h2><div><span>{PARAGRAPH}</span></div><table>{rows}</table>" for i in range(blocks))
    return f"<html><head><title>t</title></head><body>{body}</body></html>"


def timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - began)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=60)
    args = parser.parse_args()

    import io

    from bs4 import BeautifulSoup
    from pypdf import PdfReader

    from qa.reading.readers.html import html_text
    from qa.reading.readers.pdf import pdf_text

    data = make_pdf(args.pages)
    ours = timed(lambda: pdf_text(data, "bench.pdf"))
    base = timed(lambda: [p.extract_text() for p in PdfReader(io.BytesIO(data)).pages])
    print(f"PDF, {args.pages} pages, {len(data)} bytes: qa reader (pypdfium2) {ours:.2f}s "
          f"({ours / args.pages * 1000:.0f} ms/page); pypdf extract_text {base:.2f}s "
          f"({base / args.pages * 1000:.0f} ms/page)")
    try:  # the other reader that gives each line's geometry, if it is installed
        import pdfplumber
    except ImportError:
        pass
    else:
        def plumber() -> None:
            with pdfplumber.open(io.BytesIO(data)) as pdf:
                for page in pdf.pages:
                    page.extract_text_lines(return_chars=True)

        other = timed(plumber, repeat=1)
        print(f"  pdfplumber extract_text_lines (the same geometry) {other:.2f}s "
              f"({other / args.pages * 1000:.0f} ms/page)")
    html = make_html(args.pages)
    ours = timed(lambda: html_text(html))
    base = timed(lambda: BeautifulSoup(html, "html.parser").get_text(" "))
    print(f"HTML, {len(html)} bytes: qa reader {ours:.2f}s; BeautifulSoup get_text {base:.2f}s")


if __name__ == "__main__":
    main()
