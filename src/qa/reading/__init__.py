"""Reading: files of the corpus folder (.txt .md .html .pdf) into Documents with their metadata, and
Documents into chunks whose text is always document.text[start:end]; the trash of deleted files."""
