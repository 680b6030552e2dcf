"""Users' own settings for their services, as in Zato: `self.config`.

Every `*.ini` or `*.conf` file in the server's user-config folders (`[main] user_conf_dir` in
server.conf; default `config/user-conf`, and a quickstart's servers share `DIR/user-conf`) is
`self.config.NAME`, NAME being the file's name without its suffix; its sections and keys are
attributes. `[api]` with `timeout = 30` in airports.ini is `self.config.airports.api.timeout`,
the text "30". Zato 3.2's spelling `self.config.user.airports` is the same object. The files
are read with configobj, as Zato reads them: `[[sub]]` nests a section, `a, b` is a list,
"quoted text" keeps its commas, and nothing is interpolated.

Zato's older spelling, `self.user_config.LABEL.FILE.SECTION.KEY`, reads the files that
server.conf names in its `[user_config]` stanza (`data1 = ./my1.ini`: self.user_config.data1.my1,
a relative path being to the folder server.conf is in), read the same way.

A worker looks at its folders again when a service reads `self.config`, at most once a second:
an edited file applies without a restart, and a removed one is gone. A file that does not parse
keeps what was read of it before. The server log names the file and the line, never the line's
text, which may hold a password. Sections are read-only: a service cannot change what other
services read.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import configobj

logger = logging.getLogger(__name__)

SUFFIXES = (".ini", ".conf")
RECHECK = 1.0  # seconds: how often a worker may look at the folders again
ZATO_32_ALIAS = "user"  # self.config.user.NAME, unless a file is itself called user.ini

_WHY = {  # configobj's error classes, said without quoting the line (it may hold a secret)
    "DuplicateError": "a section or a key given twice",
    "NestingError": "a section nested deeper than the one around it",
    "ParseError": "neither a [section], a key = value, nor a # comment",
    "UnreprError": "a value that cannot be read",
}


def _frozen(*_: Any, **__: Any) -> None:
    raise TypeError("user config is read-only: edit its file instead")


class Section(dict):
    """One file or one [section] of it: a read-only dict whose keys are also attributes."""

    __slots__ = ("_where",)

    def __init__(self, items: Iterable[tuple[str, Any]], where: str):
        dict.__init__(self, items)
        object.__setattr__(self, "_where", where)

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            if name.startswith("__"):  # copy, pickle and friends probe for dunders
                raise AttributeError(name) from None
            has = ", ".join(sorted(self)) or "nothing"
            raise AttributeError(f"user config {self._where} has no {name!r} (it has: {has})") from None

    def __missing__(self, name: str) -> Any:
        raise KeyError(f"user config {self._where} has no {name!r}")

    __setattr__ = __delattr__ = __setitem__ = __delitem__ = _frozen
    clear = pop = popitem = setdefault = update = __ior__ = _frozen  # type: ignore[assignment]

    def __reduce__(self) -> tuple:
        """A copy (copy.deepcopy, pickle) is a plain dict, the service's own to change."""
        return (dict, (dict(self),))

    def __copy__(self) -> dict:
        return dict(self)

    def __deepcopy__(self, memo: dict) -> dict:
        import copy

        return {k: copy.deepcopy(v, memo) for k, v in self.items()}


class _Root(Section):
    """name -> file; `.user` is the root itself unless a file is called user.ini."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name == ZATO_32_ALIAS and name not in self:
            return self
        if name.startswith("__") or name in self:
            return Section.__getattr__(self, name)
        raise AttributeError(self._no_file(name))

    def __missing__(self, name: str) -> Any:
        raise KeyError(self._no_file(name))

    def _no_file(self, name: str) -> str:
        has = ", ".join(sorted(self)) or "none"
        return f"no user config file {name}.ini or {name}.conf (there are: {has})"


def section_of(node: configobj.Section, where: str) -> Section:
    import configobj

    items = []
    for key, value in node.items():
        if isinstance(value, configobj.Section):
            value = section_of(value, f"{where}.{key}")
        items.append((key, value))
    return Section(items, where)


def parse(path: str, name: str) -> Section:
    """The file at `path` as a Section, or ValueError saying what is wrong and on which line."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"not UTF-8 text (byte {e.start})") from None
    return parse_text(text, name)


def parse_text(text: str, name: str) -> Section:
    """`text` (a user-config file's) as a Section, or ValueError saying on which line it is wrong."""
    import configobj  # here: a server without user-config files never loads it

    try:
        parsed = configobj.ConfigObj(text.splitlines(), interpolation=False, list_values=True)
        return section_of(parsed, name)
    except configobj.ConfigObjError as e:
        errors = getattr(e, "errors", None) or [e]
        said = "; ".join(
            f"line {getattr(x, 'line_number', '?')}: {_WHY.get(type(x).__name__, type(x).__name__)}"
            for x in errors
        )
        raise ValueError(said) from None
    except RecursionError:  # configobj and section_of walk nested sections ([[[a]]]) by recursion
        raise ValueError("sections nested too deeply") from None


def files_in(folders: Iterable[str]) -> tuple[dict[str, tuple[str, tuple]], dict[str, OSError]]:
    """name -> (path, signature) of every user-config file in `folders` (a later folder wins),
    and the folders that cannot be read. A missing folder is no user config, not an error."""
    found: dict[str, tuple[str, tuple]] = {}
    failed: dict[str, OSError] = {}
    for folder in folders:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except FileNotFoundError:
            continue
        except OSError as e:
            failed[folder] = e
            continue
        for entry in entries:
            stem, suffix = os.path.splitext(entry.name)
            if suffix.lower() not in SUFFIXES or stem.startswith("."):
                continue
            try:
                if not entry.is_file():
                    continue
                st = entry.stat()
            except OSError:  # removed since the folder was listed: gone
                continue
            found[stem] = (entry.path, (st.st_mtime_ns, st.st_size, st.st_ino))
    return found, failed


def survey(folders: Iterable[str]) -> str:
    """One line for `zato info`: the folders, and each file read or why it cannot be."""
    folders = tuple(folders)
    found, failed = files_in(folders)
    said = [f"{folder} (cannot be read: {e.strerror})" for folder, e in failed.items()]
    for name, (path, _) in sorted(found.items()):
        try:
            parse(path, name)
        except (OSError, ValueError) as e:
            said.append(
                f"{os.path.basename(path)} (cannot be read: {e.strerror if isinstance(e, OSError) else e})"
            )
        else:
            said.append(os.path.basename(path))
    return f"{', '.join(folders)}: {', '.join(said) or 'no files'}"


def survey_labels(files: Iterable[tuple[str, str]]) -> str:
    """One line for `zato info`: each [user_config] label, its file, and why it cannot be read."""
    said = []
    for label, path in files:
        try:
            parse(path, label)
        except (OSError, ValueError) as e:
            why = (e.strerror or str(e)) if isinstance(e, OSError) else str(e)
            said.append(f"{label} = {path} (cannot be read: {why})")
        else:
            said.append(f"{label} = {path}")
    return ", ".join(said)


class _File(NamedTuple):
    signature: tuple  # (mtime_ns, size, inode): a change means the file is read again
    section: Section | None  # what was read of it; None while it never parsed
    path: str


class _Labels(Section):
    """label -> {file name -> Section}: what `self.user_config` gives; a label whose file
    cannot be read says why when it is used."""

    __slots__ = ("_why",)

    def __init__(self, items: Iterable[tuple[str, Any]], why: dict[str, str]):
        Section.__init__(self, items, "")
        object.__setattr__(self, "_why", why)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in self:
            return Section.__getattr__(self, name)
        raise AttributeError(self._no_label(name))

    def __missing__(self, name: str) -> Any:
        raise KeyError(self._no_label(name))

    def _no_label(self, name: str) -> str:
        if name in self._why:
            return f"self.user_config.{name}: {self._why[name]}"
        has = ", ".join(sorted({*self, *self._why})) or "none"
        return (
            f"self.user_config has no {name!r}: server.conf's [user_config] gives no such label"
            f" (it gives: {has}); a file in the user-config folder is self.config.{name}"
        )


class LabelledFiles:
    """Zato's `[user_config]` stanza: LABEL = path of a file that services read as
    self.user_config.LABEL.FILE (FILE: its name without the suffix), kept in step with the files."""

    def __init__(self, files: Iterable[tuple[str, str]] = ()):
        self.files = tuple(files)
        self._read: dict[str, _File] = {}
        self._why: dict[str, str] = {}
        self.root = _Labels((), {})
        self.scan()

    def scan(self) -> None:
        read: dict[str, _File] = {}
        why: dict[str, str] = {}
        for label, path in self.files:
            try:
                read[label] = self._read_one(label, path)
            except (OSError, ValueError) as e:
                said = (e.strerror or str(e)) if isinstance(e, OSError) else str(e)
                old = self._read.get(label)
                keep = old is not None and old.section is not None and not isinstance(e, FileNotFoundError)
                if self._why.get(label) != said:  # said once, until it changes
                    kept = "; keeping what was read of it before" if keep else ""
                    logger.error("user config label %s: cannot read %s: %s%s", label, path, said, kept)
                self._why[label] = said
                if keep and old is not None:
                    read[label] = old  # a broken edit keeps what was read before
                else:
                    why[label] = f"its file {path} cannot be read: {said}"
        if read != self._read or why != self.root._why:
            self._read = read
            self.root = _Labels(sorted((label, self._section(label, f)) for label, f in read.items()), why)

    def _read_one(self, label: str, path: str) -> _File:
        st = os.stat(path)
        signature = (st.st_mtime_ns, st.st_size, st.st_ino)
        old = self._read.get(label)
        if old and old.signature == signature:
            return old
        section = parse(path, f"{label}.{_stem(path)}")
        self._why.pop(label, None)
        logger.info("user config label %s: read %s", label, path)
        return _File(signature, section, path)

    @staticmethod
    def _section(label: str, f: _File) -> Section:
        return Section([(_stem(f.path), f.section)], label)


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


class UserConfig:
    """What one worker's services read as `self.config` (and `self.user_config`), kept in step
    with the folders and files."""

    def __init__(
        self,
        folders: Iterable[str] = (),
        recheck: float = RECHECK,
        clock: Callable[[], float] = time.monotonic,
        labelled: Iterable[tuple[str, str]] = (),
    ):
        self.folders = tuple(folders)
        self._labelled = LabelledFiles(labelled)
        self._next_labelled = clock() + recheck
        self._recheck, self._clock = recheck, clock
        self._files: dict[str, _File] = {}
        self._deployed: dict[str, Section] = {}  # deployed to the cluster (zato deploy NAME.ini)
        self._deployed_text: dict[str, str] = {}  # ... as read: the same text is not read again
        self._shadowed: set[str] = set()  # deployed names a file of this server's is used for
        self._root = _Root((), "")
        self._next = clock() + recheck  # the first look is the one below
        self._unreadable: set[str] = set()  # folders already reported
        self._scan()

    def current(self) -> Section:
        """The root (file name -> Section); looks at the folders again if a second has passed."""
        now = self._clock()
        if now >= self._next:
            self._next = now + self._recheck
            self._scan()
        return self._root

    def labelled(self) -> Section:
        """label -> {file name -> Section}: Zato's self.user_config; looks at the files again if
        a second has passed."""
        now = self._clock()
        if now >= self._next_labelled:
            self._next_labelled = now + self._recheck
            self._labelled.scan()
        return self._labelled.root

    def _found(self) -> dict[str, tuple[str, tuple]]:
        found, failed = files_in(self.folders)
        for folder, e in failed.items():
            if folder not in self._unreadable:  # said once, until it can be read again
                logger.error("user config: cannot read the folder %s: %s", folder, e.strerror)
        self._unreadable = set(failed)
        return found

    def _scan(self) -> None:
        found = self._found()
        if {n: s for n, (_, s) in found.items()} == {n: f.signature for n, f in self._files.items()}:
            return
        files: dict[str, _File] = {}
        for name, (path, signature) in found.items():
            old = self._files.get(name)
            if old and old.signature == signature:
                files[name] = old
                continue
            try:
                section: Section | None = parse(path, name)
            except (OSError, ValueError) as e:
                why = e.strerror if isinstance(e, OSError) else str(e)
                kept = "keeping what was read of it before" if old and old.section else "it is left out"
                logger.error("user config %s: cannot read %s: %s; %s", name, path, why, kept)
                section = old.section if old else None
            else:
                logger.info("user config %s: read %s", name, path)
            files[name] = _File(signature, section, path)
        for gone in self._files.keys() - files.keys():
            logger.info("user config %s: its file is gone", gone)
        self._files = files
        self._rebuild()

    def set_deployed(self, name: str, text: str | None) -> None:
        """The cluster-wide file `name` as deployed now (None: undeployed). One that does not
        parse (it was checked at deploy) keeps what was there before."""
        if text is None:
            self._deployed_text.pop(name, None)
            if self._deployed.pop(name, None) is not None:
                logger.info("user config %s: undeployed from the cluster", name)
        elif self._deployed_text.get(name) == text:
            return
        else:
            try:
                self._deployed[name] = parse_text(text, name)
            except ValueError as e:
                logger.error("user config %s: the deployed file cannot be read: %s; not changed", name, e)
                return
            self._deployed_text[name] = text
            logger.info("user config %s: deployed to the cluster, read", name)
        self._rebuild()

    def set_all_deployed(self, texts: dict[str, str]) -> None:
        """Every cluster-wide file as deployed now (at start, and after missed events)."""
        for gone in set(self._deployed) - set(texts):
            self.set_deployed(gone, None)
        for name, text in texts.items():
            self.set_deployed(name, text)

    def _rebuild(self) -> None:
        """The root: the files deployed to the cluster, and this server's own files over them."""
        own = {n: f.section for n, f in self._files.items() if f.section is not None}
        shadowed = set(own) & set(self._deployed)
        for name in sorted(shadowed - self._shadowed):
            logger.warning(
                "user config %s: this server's file %s is used, not the one deployed to the cluster",
                name,
                self._files[name].path,
            )
        self._shadowed = shadowed
        merged = {**self._deployed, **own}
        self._root = _Root(sorted(merged.items()), "")
