"""State shared by the pages: settings, the active data set, the sidebar summary, and the link.

Pages stay thin: they call these helpers, draw, and start jobs. Loading goes through
``alignscope.data.preferences``; this module only caches it and keeps it in the session.

The link: the active data set (its source string and fingerprint), the page, the sweep, the
selection and the run live in the URL's query parameters (:func:`sync_link` writes them on every
run), so a reload or a pasted link opens the same view (:func:`ensure_initial_data` and
:func:`restore_link` read them on a session's first run). A typed path stays in the data root and
uploads in ``ALIGNSCOPE_HOME/uploads``, sweeps, selections likewise in their folders; whatever a link
names that is not on this machine is said in one line (:func:`show_link_notes`), never a traceback.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import streamlit as st

from alignscope import settings
from alignscope.data.preferences import (
    DEFAULT_MAX_ROW_CHARS,
    DataError,
    PreferenceData,
    load_preferences,
)
from alignscope.files import PathOutsideRootError, read_jsonl, resolve_in_root
from alignscope.jobs import JobError, JobStore
from alignscope.run_files import METRICS_FILE

DATA_KEY = "alignscope_data"
SELECTION_KEY = "alignscope_selection"  # the active selection (the Train page trains on it)
AUDIT_TABLE_KEY = "alignscope_audit_table"  # {"fingerprint", "table"}: the Audit page's, for the report
LINK_KEY = "alignscope_link"            # plain keys survive page switches; widget keys do not
LINK_NOTES_KEY = "alignscope_link_notes"
LINK_RESTORED_KEY = "alignscope_link_restored"
# The query parameters this app owns (others, e.g. Streamlit's own ``embed``, are left alone).
LINK_PARAMS = ("page", "data", "fp", "split", "columns", "drop_invalid", "sweep", "selection", "run")
SUPPORTED = (".jsonl", ".json", ".parquet", ".csv", ".jsonl.gz", ".json.gz", ".parquet.gz", ".csv.gz")


@st.cache_resource(show_spinner=False, max_entries=6)
def _load_cached(source: str, stamp: Any, split: str | None, columns: tuple, drop_invalid: bool,
                 max_row_chars: int) -> PreferenceData:
    # cache_resource, not cache_data: a loaded set can be 100+ MB of text and is never mutated,
    # so every rerun and session shares one object instead of unpickling a copy. ``stamp`` (mtime,
    # size) makes an edited file load anew.
    return load_preferences(source, split=split, columns=dict(columns), drop_invalid=drop_invalid,
                            max_row_chars=max_row_chars)


def load(source: str, *, split: str | None = None, columns: dict[str, str] | None = None,
         drop_invalid: bool = False, max_row_chars: int = DEFAULT_MAX_ROW_CHARS) -> PreferenceData:
    """Load (cached) and make it the session's active data set. Raises DataError."""
    path = Path(source)
    stamp = (path.stat().st_mtime_ns, path.stat().st_size) if path.exists() and path.is_file() else None
    data = _load_cached(source, stamp, split or None, tuple(sorted((columns or {}).items())),
                        drop_invalid, max_row_chars)
    st.session_state[DATA_KEY] = data
    return data


def load_user_path(user_path: str, **options: Any) -> PreferenceData:
    """A path typed by the user: confined to the data root before anything is opened."""
    return load(str(resolve_in_root(settings.data_root(), user_path)), **options)


def load_upload(name: str, content: bytes, **options: Any) -> PreferenceData:
    """Keep an upload under ``ALIGNSCOPE_HOME/uploads`` with its original base name (the suffix
    picks the reader) and load it; a file that fails to load is deleted again."""
    uploads = settings.home() / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="upload-", dir=uploads))
    target = folder / (Path(name).name or "upload")
    target.write_bytes(content)
    try:
        return load(str(target), **options)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def active_data() -> PreferenceData | None:
    return st.session_state.get(DATA_KEY)


def require_data() -> PreferenceData:
    """The active data set, or an empty-state hint and ``st.stop()`` (pages other than Data)."""
    data = active_data()
    if data is None:
        st.info("No data set yet: load one on the Data page.")
        st.stop()
    return data


def ensure_initial_data() -> None:
    """First visit: open the data set the link names (``?data=``), else what ``alignscope app
    --data`` named, else the built-in demo set."""
    if DATA_KEY in st.session_state:
        return
    if st.query_params.get("data") and _load_linked_data():
        return
    initial = os.environ.get("ALIGNSCOPE_INITIAL_DATA", "demo")
    try:
        if initial.startswith("demo"):
            load(initial)
        else:
            load_user_path(initial)
    except (DataError, PathOutsideRootError) as err:
        st.session_state[DATA_KEY] = None
        st.error(f"Could not open the initial data set: {err}")


def sidebar_summary() -> None:
    data = active_data()
    with st.sidebar:
        if data is None:
            st.caption("No data set loaded.")
            return
        if data.is_demo:
            st.warning("**Demo data** — synthetic pairs generated by alignscope, with planted "
                       "label flips, near-duplicates and low-quality pairs.", icon=":material/science:")
        st.caption("Active data set")
        st.text(f"{Path(data.source).name if not data.is_demo else data.source}\n"
                f"{data.n_pairs:,} pairs · {data.format}\nfingerprint {data.fingerprint}")


def files_in_data_root(limit: int = 300) -> list[str]:
    """Loadable files and ``save_to_disk`` folders under the data root (relative paths)."""
    root = settings.data_root()
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        depth = Path(dirpath).relative_to(root).parts
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in ("node_modules", "__pycache__")
                       and len(depth) < 3]
        if "dataset_info.json" in filenames or "dataset_dict.json" in filenames:
            found.append(str(Path(dirpath).relative_to(root)))
            dirnames[:] = []
            continue
        found.extend(str((Path(dirpath) / f).relative_to(root)) for f in filenames
                     if f.lower().endswith(SUPPORTED))
        if len(found) >= limit:
            break
    return sorted(found)[:limit]


def job_store():
    """One JobStore per app process and ALIGNSCOPE_HOME (it opens a short connection per call)."""
    return _job_store(str(settings.home()))


@st.cache_resource(show_spinner=False)
def _job_store(home: str):

    return JobStore(Path(home) / "jobs.sqlite")


def run_metrics(run_dir: str | Path):
    """metrics.jsonl of a run as a DataFrame (empty when absent); a half-written line is skipped."""
    import pandas as pd


    return pd.DataFrame(read_jsonl(Path(run_dir) / METRICS_FILE))


def read_json_file(path: str | Path) -> dict | None:

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------------------------------ the link
def _note(text: str) -> None:
    notes = st.session_state.setdefault(LINK_NOTES_KEY, [])
    if text not in notes:
        notes.append(text)


def data_link(data: PreferenceData) -> dict[str, str]:
    """The query parameters that name ``data``: ``data`` (``demo:N:SEED``, a path relative to the
    data root, ``upload:NAME`` for an uploaded file, ``hub:ORG/NAME`` for a hub id), ``fp`` (its
    fingerprint) and the load options that differ from the defaults."""
    source = str(data.source)
    if data.is_demo:
        value = source
    else:
        path = Path(source)
        value = "hub:" + source
        if path.is_absolute() or path.exists():
            resolved = path.resolve()
            for prefix, root in (("", settings.data_root()), ("upload:", settings.home() / "uploads")):
                try:
                    value = prefix + str(resolved.relative_to(Path(root).resolve()))
                    break
                except ValueError:
                    value = str(resolved)  # outside both: a reload refuses it and says so
    params = {"data": value, "fp": data.fingerprint}
    options = data.load_options
    if options.get("split"):
        params["split"] = str(options["split"])
    if options.get("columns"):
        params["columns"] = ",".join(f"{k}={v}" for k, v in options["columns"].items())
    if options.get("drop_invalid"):
        params["drop_invalid"] = "1"
    return params


def _load_linked_data() -> bool:
    """Load the data set of ``?data=`` (confined like a typed path); a note when it cannot be."""
    from alignscope.data.preferences import parse_column_map

    value = st.query_params.get("data", "")
    options: dict[str, Any] = {"split": st.query_params.get("split") or None,
                               "drop_invalid": st.query_params.get("drop_invalid") == "1"}
    try:
        options["columns"] = parse_column_map(st.query_params.get("columns") or None)
        if value.startswith("demo"):
            data = load(value, **options)
        elif value.startswith("hub:"):
            data = load(value[4:], **options)
        elif value.startswith("upload:"):
            path = resolve_in_root(settings.home() / "uploads", value[7:])
            if not path.exists():
                _note(f"The link names the uploaded file {Path(value[7:]).name!r}, which is not on this machine: "
                      "upload it again on the Data page.")
                return False
            data = load(str(path), **options)
        else:
            path = resolve_in_root(settings.data_root(), value)
            if not path.exists():
                _note(f"The link names the data file {value!r}, which is not on this machine (looked in the data "
                      f"root {settings.data_root()}).")
                return False
            data = load(str(path), **options)
    except PathOutsideRootError as err:
        _note(f"The link's data set was refused: {err}.")
        return False
    except DataError as err:
        _note(f"The link's data set {value!r} could not be opened: {err}")
        return False
    expected = st.query_params.get("fp")
    if expected and expected != data.fingerprint:
        _note(f"The data at {value!r} changed since the link was made (fingerprint {data.fingerprint}, the link "
              f"says {expected}): the sweep, selection and run it names may not fit it.")
    return True


def _sweeps_folder() -> Path:
    return settings.home() / "sweeps"


def _sweep_fingerprint(folder: Path) -> str | None:
    recorded = read_json_file(folder / "sweep.json") or {}
    return recorded.get("data", {}).get("fingerprint")


def restore_link(pages: dict[str, Any], current: str) -> None:
    """A session's first run: put the sweep, selection and run the link names into the session
    (each checked: in its folder, on this machine, made on the active data), and open the page
    ``?page=`` names when the URL's path did not already."""
    if st.session_state.get(LINK_RESTORED_KEY):
        return
    st.session_state[LINK_RESTORED_KEY] = True
    data = active_data()
    link = st.session_state.setdefault(LINK_KEY, {})
    sweep = st.query_params.get("sweep")
    if sweep:
        try:
            folder = resolve_in_root(_sweeps_folder(), Path(sweep).name)
        except PathOutsideRootError:
            folder = None
        if folder is None or not (folder / "sweep.json").exists():
            _note(f"The sweep folder {sweep!r} is not on this machine (looked in {_sweeps_folder()}).")
        elif data is not None and _sweep_fingerprint(folder) != data.fingerprint:
            _note(f"The sweep {sweep!r} was run on other data (fingerprint {_sweep_fingerprint(folder)}), not on "
                  f"the active data set ({data.fingerprint}).")
        else:
            link.update(sweep=folder.name, sweep_fp=data.fingerprint if data is not None else None)
    selection = st.query_params.get("selection")
    if selection and data is not None:
        _restore_selection(data, selection)
    run = st.query_params.get("run")
    if run:

        try:
            job_store().get(run, reconcile=False)
            link["run"] = run
        except JobError:
            _note(f"The run {run!r} is not in this machine's job store ({settings.home() / 'jobs.sqlite'}).")
    page = st.query_params.get("page")
    if page and page != current and page in pages:
        st.switch_page(pages[page], query_params={k: v for k, v in st.query_params.to_dict().items()})
    elif page and page not in pages:
        _note(f"The link names the page {page!r}, which this app does not have.")


def _restore_selection(data: PreferenceData, name: str) -> None:
    from alignscope.select.selection import Selection

    folder = settings.home() / "selections"
    try:
        path = resolve_in_root(folder, Path(name).name)
    except PathOutsideRootError:
        path = None
    if path is None or not path.exists():
        _note(f"The selection {name!r} is not on this machine (looked in {folder}).")
        return
    try:
        selection = Selection.read(path)
        selection.check_against(data)
    except (OSError, ValueError) as err:
        _note(f"The selection {name!r} does not fit the active data set: {err}")
        return
    label = path.stem.removeprefix(f"{data.fingerprint}-")
    st.session_state[SELECTION_KEY] = {"path": str(path), "name": selection.config.get("name") or label,
                                       "fingerprint": data.fingerprint, "n_selected": selection.n_selected}


KEPT_CHOICES_KEY = "alignscope_kept_choices"


def keep_choices(*keys: str) -> None:
    """Keep the values of widgets that are not drawn in every run: a page's pickers while another
    page is shown, a lazy tab's while another tab is open. Streamlit drops a widget's value in a run
    that does not draw it; each value is kept under one plain key and put back before its widget is
    drawn again. Call at the top of the page, before the widgets, every run; such a widget takes its
    default through ``st.session_state.setdefault``, not ``value=`` (Streamlit warns about both)."""
    kept = st.session_state.setdefault(KEPT_CHOICES_KEY, {})
    for key in keys:
        if key in st.session_state:
            kept[key] = st.session_state[key]
        elif key in kept:
            st.session_state[key] = kept[key]


def seed_page_widgets() -> None:
    """Give the pages' pickers the link's choices when they have none yet (a widget's own key is
    dropped while its page is not shown; the link keeps the choice)."""
    link = st.session_state.get(LINK_KEY) or {}
    data = active_data()
    if link.get("sweep") and "scaling_sweep" not in st.session_state and data is not None \
            and link.get("sweep_fp") == data.fingerprint:
        st.session_state["scaling_sweep"] = str(_sweeps_folder() / link["sweep"])
    if link.get("run") and "runs_pick" not in st.session_state:
        st.session_state["runs_pick"] = link["run"]


def sync_link(page: str) -> None:
    """Write the current page, data set, sweep, selection and run into the URL's query parameters
    (only those that changed; parameters this app does not own are left alone)."""
    link = st.session_state.setdefault(LINK_KEY, {})
    data = active_data()
    picked_sweep = st.session_state.get("scaling_sweep")  # the Scaling page's picker, while it has one
    if picked_sweep and data is not None:
        link.update(sweep=Path(str(picked_sweep)).name, sweep_fp=data.fingerprint)
    if st.session_state.get("runs_pick"):
        link["run"] = str(st.session_state["runs_pick"])
    wanted: dict[str, str] = {"page": page}
    if data is not None:
        wanted.update(data_link(data))
        if link.get("sweep") and link.get("sweep_fp") == data.fingerprint:
            wanted["sweep"] = link["sweep"]
        chosen = st.session_state.get(SELECTION_KEY)
        if chosen and chosen.get("fingerprint") == data.fingerprint:
            wanted["selection"] = Path(chosen["path"]).name
    if link.get("run"):
        wanted["run"] = link["run"]
    for key in LINK_PARAMS:
        if key in wanted and st.query_params.get(key) != wanted[key]:
            st.query_params[key] = wanted[key]
        elif key not in wanted and key in st.query_params:
            del st.query_params[key]


def show_link_notes() -> None:
    """What the link named that this machine does not have, above every page until dismissed."""
    notes = st.session_state.get(LINK_NOTES_KEY)
    if not notes:
        return
    for note in notes:
        st.warning(note, icon=":material/link_off:")
    if st.button("Dismiss", key="link_notes_dismiss"):
        st.session_state[LINK_NOTES_KEY] = []
        st.rerun()
