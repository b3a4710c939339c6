"""Sphinx configuration of the skspivae documentation.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``
(what ``.ci/run`` does). The gallery runs every ``examples/plot_*.py`` except
``plot_dask_*``, which needs a Dask cluster and is shown without its output.
"""

import inspect
import re
from pathlib import Path

import skspivae

project = "skspivae"
author = "The skspivae developers"
copyright = "2026, " + author
release = skspivae.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "sg_execution_times.rst", "auto_examples/*.ipynb",
                    "benchmarks_*.rst"]  # included from benchmarks.rst
root_doc = "index"

# --- API reference -------------------------------------------------------------
autosummary_generate = True
autodoc_typehints = "none"
# numpydoc renders the sections; the class template lists the methods.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# --- gallery -------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # Run every example but the Dask one, which starts a cluster of worker
    # processes: it is rendered as code only (its docstring says so).
    "filename_pattern": r"/plot_(?!dask_)",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "min_reported_time": 1,
}

# --- theme ---------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skspivae {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_show_sourcelink = False
html_static_path = []


# --- every public name is in the API reference ----------------------------------
API_MODULES = ("skspivae", "skspivae.datasets", "skspivae.inspection",
               "skspivae.plotting", "skspivae.callbacks", "skspivae.nn")


def _public_objects(module_name):
    """Classes and functions in ``__all__`` of a module."""
    module = __import__(module_name, fromlist=["__all__"])
    return {name for name in module.__all__
            if inspect.isclass(getattr(module, name))
            or inspect.isfunction(getattr(module, name))}


def _check_api_reference(app):
    """Warn (an error under -W) when a public name is missing from api.rst."""
    from sphinx.util import logging

    logger = logging.getLogger(__name__)
    text = (Path(app.srcdir) / "api.rst").read_text()
    sections = re.split(r"^\.\. currentmodule:: ", text, flags=re.M)[1:]
    listed = {}
    for section in sections:
        module, _, body = section.partition("\n")
        names = re.findall(r"^\s{3}(\w+)\s*$", body, flags=re.M)
        listed.setdefault(module.strip(), set()).update(names)
    for module in API_MODULES:
        missing = _public_objects(module) - listed.get(module, set())
        if missing:
            logger.warning(f"api.rst does not list {module}: {sorted(missing)}")


def _include_benchmarks(app, docname, source):
    """Append an ``include`` of every ``benchmarks_*.rst`` to benchmarks.rst."""
    if docname == "benchmarks":
        pages = sorted(Path(app.srcdir).glob("benchmarks_*.rst"))
        source[0] += "".join(f"\n.. include:: {page.name}\n" for page in pages)


def _quote_shape_names(app, what, name, obj, options, lines):
    """Quote attribute names in shapes, "(n_features_in_,)", as literals.

    A bare name ending in ``_`` is a reST link; scikit-learn writes these
    with backquotes, and this keeps docstrings that do not from breaking -W.
    """
    lines[:] = [re.sub(r"\((\w+_),\)", r"(``\1``,)", line) for line in lines]


def _skip_member(app, what, name, obj, skip, options):
    """Leave out scikit-learn's generated ``set_*_request`` methods."""
    if re.fullmatch(r"set_\w+_request", name):
        return True
    return None


def setup(app):
    app.connect("builder-inited", _check_api_reference)
    app.connect("autodoc-skip-member", _skip_member)
    app.connect("autodoc-process-docstring", _quote_shape_names)
    app.connect("source-read", _include_benchmarks)
