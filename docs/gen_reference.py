"""Writes the generated reference pages at build time (mkdocs-gen-files)."""

import mkdocs_gen_files

from downsample_study.config.reference import config_reference, results_reference

for page, text in (("reference/config.md", config_reference()),
                   ("reference/results-json.md", results_reference())):
    with mkdocs_gen_files.open(page, "w") as f:
        f.write(text)
