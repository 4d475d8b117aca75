"""Write small real PDFs (one text line per row, Helvetica) so reader tests need no binary fixtures."""

from __future__ import annotations


def make_pdf(pages: list[list[str]], prelude: str = "") -> bytes:
    """`prelude`: raw content-stream operators put before each page's text (to feed readers odd input)."""
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    pages_id = len(objects) + 1 + 2 * len(pages)
    page_ids = []
    for lines in pages:
        ops = [*([prelude] if prelude else []), "BT", "/F1 11 Tf", "14 TL", "72 720 Td"]
        for line in lines:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops += [f"({escaped}) Tj", "T*"]
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        page_ids.append(add(
            b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (pages_id, content, font)
        ))
    kids = b" ".join(b"%d 0 R" % p for p in page_ids)
    assert add(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(page_ids))) == pages_id
    catalog = add(b"<< /Type /Catalog /Pages %d 0 R >>" % pages_id)

    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, catalog, xref)
    return bytes(out)


REVIEW_PAGES = [
    ("Shipbuilding Cooperation", [
        "The shipbuilding pact covers twelve destroyers per year, built in yards on both sides of the "
        "Pacific. Each yard trains welders and engineers from the other country, and the first hulls are "
        "due to be launched in the spring of 2028.",
        "Inspectors from both navies sign off every hull.",
    ]),
    ("Semiconductor Supply", [
        "The two governments fund a shared stockpile of legacy chips so that a single factory fire can no "
        "longer halt car production in either country for months at a time.",
    ]),
]


def make_review_pdf(header: str = "Alliance Review Quarterly") -> bytes:
    """A typeset two-page PDF (fpdf2): a running header and a page-number footer on each page, a bold
    heading per page, and paragraphs that wrap over several lines, as word processors lay them out."""
    from fpdf import FPDF

    class Review(FPDF):
        def header(self) -> None:
            self.set_font("Helvetica", "", 9)
            self.cell(0, 8, header)
            self.ln(12)

        def footer(self) -> None:
            self.set_y(-15)
            self.set_font("Helvetica", "", 9)
            self.cell(0, 10, f"Page {self.page_no()}", align="C")

    pdf = Review()
    pdf.set_auto_page_break(True, 20)
    for heading, paragraphs in REVIEW_PAGES:
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 16)
        pdf.multi_cell(0, 9, heading)
        pdf.ln(2)
        pdf.set_font("Helvetica", "", 11)
        for paragraph in paragraphs:
            pdf.multi_cell(0, 6, paragraph)
            pdf.ln(3)
    return bytes(pdf.output())
