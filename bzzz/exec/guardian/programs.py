"""The program rules, as a table from a program's name to the function that checks what that
program is asked to do: what ``rm`` deletes, where ``cp``/``mv``/``ln`` put things (and what
the copies and links stand for afterwards), what ``find -exec`` and ``xargs`` run, what
``kill`` kills, which options of ``tar``, ``git``, ``ssh``, ``vim``... carry shell code.

Each rule takes the checker (``bzzz/exec/guardian/checker.py``), the program's name, its
arguments, its redirections and the context, and refuses through the checker.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable

from .catalog import DISK_TOOLS, DOWNLOADERS, ESCALATION, KERNEL, POWER, SHELLS
from .marks import GLOB, HOME_DIR, PPID_MARK, PROC_MARK, UNK, UNQUOTE, as_text, show
from .paths import DISK_DEVICE
from .state import IO, Comps, Ctx, State, Where

Rule = Callable[[State, str, list[str], IO, Ctx], None]

# programs whose options carry shell code: option -> how to find the code
_CODE_OPTIONS = {
    "tar": ("--to-command=", "--checkpoint-action=exec=", "--use-compress-program=",
            "--info-script=", "--new-volume-script=", "--rsh-command="),
    "rsync": ("--rsh=", "-e"), "zip": ("--unzip-command=", "-TT"), "ssh": ("-oProxyCommand=",
                                                                           "-oLocalCommand="),
    "scp": ("-oProxyCommand=", "-S"), "git": (), "vim": (), "less": (), "man": ("-P",),
}
_SED_EXEC = re.compile(r"(?:^|[;\n}])\s*(?:\d+|/[^/\n]*/)?\s*e(?:\s|$)|"
                       r"s([^\\\n])(?:\\.|(?!\1)[^\\])*\1(?:\\.|(?!\1)[^\\])*\1"
                       r"[gpiImM0-9]*e")
_SED_WRITE = re.compile(r"(?:^|[;\n])\s*(?:\d+|/[^/\n]*/)?\s*[wW]\s+(\S+)|"
                        r"s([^\\\n])(?:\\.|(?!\2)[^\\])*\2(?:\\.|(?!\2)[^\\])*\2"
                        r"[gpiImM0-9e]*w\s*(\S+)")


def _paths(args: list[str]) -> list[str]:
    """The operands of a command (not its options)."""
    out: list[str] = []
    after = False
    for a in args:
        if after or not a.startswith("-") or a == "-":
            out.append(a)
        elif a == "--":
            after = True
    return out


def _r_rm(chk: State, name: str, args: list[str], io: IO, ctx: Ctx) -> None:
    flags = "".join(a[1:] for a in args if a.startswith("-") and not a.startswith("--"))
    recursive = name == "rm" and ("r" in flags.lower() or "--recursive" in args)
    if "--no-preserve-root" in args:
        chk.refuse("rm --no-preserve-root")
    for p in _paths(args):
        shown = show(p)
        w = chk.where(p, follow_last=False)
        if w.kind in ("ws", "safe", "fd", "scratch"):
            continue
        if w.comps == () or (w.comps is not None and len(w.comps) == 1 and
                             GLOB.search(w.comps[0])):
            chk.refuse(f"deletes {shown}")
        elif w.kind == "home" and w.comps == chk.home_comps:
            chk.refuse(f"deletes {shown}")
        elif w.kind == "unknown":
            chk.refuse(f"{'recursive ' if recursive else ''}delete of {shown}: where it "
                        f"points is only known at run time")
        elif w.kind == "scratchroot":
            chk.refuse(f"deletes {shown} (a shared scratch directory itself, or all of it)")
        elif recursive:
            chk.refuse(f"recursive delete outside the workspace ({shown})")
        else:
            chk.refuse(f"deletes {shown} (outside the workspace)")


def _r_find(chk: State, name: str, args: list[str], io: IO, ctx: Ctx) -> None:
    i = 0
    while i < len(args) and args[i] in ("-H", "-L", "-P", "-O", "-D"):
        i += 2 if args[i] in ("-D",) else 1
    roots: list[str] = []
    while i < len(args) and not args[i].startswith(("-", "(", "!", ",")):
        roots.append(args[i])
        i += 1
    roots = roots or ["."]
    expr = args[i:]
    j = 0
    while j < len(expr):
        a = expr[j]
        if a == "-delete":
            for r in roots:
                if chk.where(r).kind not in ("ws", "scratch"):
                    chk.refuse(f"find deletes outside the workspace ({show(r)})")
        elif a in ("-fprint", "-fprint0", "-fprintf", "-fls") and j + 1 < len(expr):
            chk.check_write(expr[j + 1], "find")
        elif a in ("-exec", "-execdir", "-ok", "-okdir"):
            k = j + 1
            while k < len(expr) and expr[k] not in (";", "+"):
                k += 1
            inner = expr[j + 1:k]
            if inner:
                for r in roots[:4]:
                    base = r.rstrip("/") or "/"
                    placeholder = (r.rstrip("/") + "/x") if a.startswith(("-exec", "-ok")) and \
                        a not in ("-execdir", "-okdir") else "./x"
                    if a in ("-execdir", "-okdir"):
                        saved = chk.cwds
                        chk.cd_to(base, ctx)
                    try:
                        argv = [w.replace("{}", placeholder) for w in inner]
                        chk.simple(argv, {}, ctx)
                    finally:
                        if a in ("-execdir", "-okdir"):
                            chk.cwds = saved
            j = k
        j += 1


def _placeholder(chk: State, ctx: Ctx) -> str:
    """What xargs appends: a path like the files its input names, or UNK."""
    if not ctx.up:
        return UNK
    last = chk.stage_programs(list(ctx.up[-1:]))
    if len(last) != 1:
        return UNK
    prog, argv = last[0]
    if argv is None:
        return UNK
    if prog == "find":
        k = 0
        while k < len(argv) and argv[k] in ("-H", "-L", "-P"):
            k += 1
        r = argv[k] if k < len(argv) and not argv[k].startswith(("-", "(", "!", ",")) else "."
        return r.rstrip("/") + "/x"
    if prog in ("ls", "git", "grep", "fd", "rg") and not any(
            a.startswith("/") or a.startswith("..") or a.startswith("~") for a in argv):
        return "./x"
    if prog in ("echo", "printf") and argv:
        return argv[-1]
    return UNK


def _r_xargs(chk: State, name: str, args: list[str], io: IO, ctx: Ctx) -> None:
    i = 0
    repl: str | None = None
    takes = {"-a", "-d", "-E", "-e", "-I", "-L", "-l", "-n", "-P", "-s", "--arg-file",
             "--delimiter", "--max-args", "--max-procs", "--max-chars", "--max-lines",
             "--replace", "--eof"}
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        a = args[i]
        if a == "--":
            i += 1
            break
        if a in ("-I", "--replace") and i + 1 < len(args):
            repl = args[i + 1]
        elif a.startswith("-I") and len(a) > 2:
            repl = a[2:]
        elif a.startswith(("-i", "--replace=")):
            repl = a.split("=", 1)[1] if "=" in a else (a[2:] or "{}")
        i += 2 if a in takes else 1
    inner = args[i:] or ["echo"]
    ph = _placeholder(chk, ctx)
    if repl:
        argv = [w.replace(repl, ph) for w in inner]
    else:
        argv = inner + [ph]
    chk.simple(argv, {}, ctx.but(up=None))


def _r_parallel(chk: State, name: str, args: list[str], io: IO, ctx: Ctx) -> None:
    if ":::" in args:
        k = args.index(":::")
        cmd, values = args[:k], args[k + 1:]
        cmd = [a for a in cmd if not a.startswith("-")]
        for v in values[:8]:
            text = " ".join(cmd).replace("{}", v) if "{}" in " ".join(cmd) else \
                " ".join(cmd + [v])
            chk.shell_code(text, ctx, "parallel")


def _r_eval(chk: State, name: str, args: list[str], io: IO, ctx: Ctx) -> None:
    text = " ".join(args)
    if UNK in text or PROC_MARK in text:
        chk.refuse("eval of text only known at run time: what runs would not be what was "
                    "checked")
        return
    chk.nested(as_text(text), ctx, "eval")


def _r_source(chk: State, name: str, args: list[str], io: IO, ctx: Ctx) -> None:
    if not args:
        return
    script = args[0]
    if UNK in script:
        chk.refuse(f"{name} of a file only known at run time ({show(script)})")
        return
    chk.script_arg(name, script, ctx, "shell", io=io)
    if not script.startswith(PROC_MARK) and script not in ("/dev/stdin", "/dev/fd/0"):
        chk.notes.append(f"{name} {show(script)}: the file's commands are not checked")


def _r_trap(chk: State, name: str, args: list[str], io: IO, ctx: Ctx) -> None:
    args = [a for a in args if a not in ("--",)]
    if args and not args[0].startswith("-") and args[0] != "":
        chk.shell_code(args[0], ctx, "trap")


def _r_alias(chk: State, name: str, args: list[str], io: IO, ctx: Ctx) -> None:
    for a in args:
        if "=" in a and not a.startswith("-"):
            chk.shell_code(a.split("=", 1)[1], ctx, "alias")


def _r_hash(chk: State, name: str, args: list[str], io: IO, ctx: Ctx) -> None:
    if "-p" in args:
        k = args.index("-p")
        if k + 2 < len(args):
            chk.hashed[args[k + 2]] = posixpath.basename(args[k + 1])


def _r_cd(chk: State, name: str, args: list[str], io: IO, ctx: Ctx) -> None:
    if name == "popd":
        if chk.dirstack:
            chk.cwds, chk.dirstack = chk.dirstack[-1], chk.dirstack[:-1]
        else:
            chk.cwds = frozenset([None])
        return
    targets = [a for a in args if not a.startswith("-") or a == "-"]
    if name == "pushd":
        chk.dirstack = chk.dirstack + (chk.cwds,)
    if not targets:
        chk.oldcwds, chk.cwds = chk.cwds, frozenset([HOME_DIR])
        return
    target = targets[0]
    if target == "-":
        chk.oldcwds, chk.cwds = chk.cwds, chk.oldcwds
        return
    chk.cd_to(target, ctx)


def _r_kill(chk: State, name: str, args: list[str], io: IO, ctx: Ctx) -> None:
    if name == "kill":
        targets: list[str] = []
        signal_seen, i = False, 0
        while i < len(args):
            a = args[i]
            if a == "--":
                targets.extend(args[i + 1:])
                break
            if a in ("-s", "-n"):
                i += 2
                signal_seen = True
                continue
            if a.startswith("-") and not signal_seen and a not in ("-1",) or \
                    (a.startswith("-") and not signal_seen and len(args) == 1):
                signal_seen = True
            elif a in ("-l", "-L"):
                return
            else:
                targets.append(a)
            i += 1
        for t in targets:
            if t in ("-1", "1", "-0x1") or t.lstrip("-") == "1":
                chk.refuse("kills every process (or init)")
            elif PPID_MARK in t:
                chk.refuse("kills the agent ($PPID)")
        return
    if any(a in ("-u", "--user", "-U", "--uid") or a.startswith(("-u", "--user=")) for a in args):
        chk.refuse(f"{name} by user")
    patterns = [a for a in args if not a.startswith("-")]
    for p in patterns:
        if re.fullmatch(r"\.\*?|\^?|\.\+|.*\b(bzzz|python[0-9.]*|trio|init|systemd|sshd)\b.*",
                        p.translate(UNQUOTE)):
            chk.refuse(f"{name} {show(p)}: would kill the agent or the system")


def _r_chmod(chk: State, name: str, args: list[str], io: IO, ctx: Ctx) -> None:
    paths = _paths(args)
    if not any(a.startswith("--reference") for a in args) and paths:
        mode, paths = paths[0], paths[1:]
        if re.fullmatch(r"0*[2-7][0-7]{3}", mode) or re.search(r"[ugoa]*[+=][rwxXt]*s", mode):
            chk.refuse("sets a setuid/setgid bit")
    for p in paths:
        chk.check_write(p, name)


def _r_chown(chk: State, name: str, args: list[str], io: IO, ctx: Ctx) -> None:
    paths = _paths(args)
    if not any(a.startswith("--reference") for a in args) and paths:
        owner, paths = paths[0], paths[1:]
        if name == "chgrp" and owner in ("root", "0", "wheel", "sudo", "adm") or \
                name == "chown" and re.split("[:.]", owner)[0] in ("root", "0"):
            chk.refuse("gives files to root")
    for p in paths:
        chk.check_write(p, name)


def _r_writer_all(chk: State, name: str, args: list[str], io: IO, ctx: Ctx) -> None:
    """Programs that write every path argument."""
    skip_next = {"truncate": {"-s", "--size", "-r", "--reference"}, "touch": {"-d", "-r", "-t"},
                 "mkdir": {"-m", "--mode"}, "shred": {"-n", "-s", "--iterations", "--size"},
                 "setfacl": {"-m", "-x", "-M", "-X"}, "mknod": {"-m"}, "mkfifo": {"-m"},
                 "split": {"-b", "-l", "-n", "-C", "-a"}}.get(name, set())
    i = 0
    paths: list[str] = []
    while i < len(args):
        a = args[i]
        if a in skip_next:
            i += 2
            continue
        if not a.startswith("-") or a == "-":
            paths.append(a)
        i += 1
    if name == "tee":
        for p in paths:
            chk.check_write(p, name)
        return
    if name in ("unlink", "rmdir"):
        for p in paths:
            w = chk.where(p, follow_last=False)
            if w.kind not in ("ws", "scratch", "safe"):
                chk.refuse(f"{name} deletes {show(p)} (outside the workspace)")
        return
    if name == "split":
        paths = paths[1:2]
    for p in paths:
        chk.check_write(p, name, follow_last=name not in ("mkdir",))


_COPY_TAKES = {"-t", "--target-directory", "-S", "--suffix", "-m", "--mode", "-o", "--owner",
               "-g", "--group", "-e", "--rsh", "--exclude", "--include", "--filter", "-f",
               "--rsync-path", "--chmod", "--backup-dir", "-B", "--block-size", "--max-size",
               "--min-size", "--bwlimit", "--timeout", "--port", "--log-file", "--files-from",
               "--exclude-from", "--include-from", "--partial-dir", "--temp-dir"}


def _r_copy(chk: State, name: str, args: list[str], io: IO, ctx: Ctx) -> None:
    """cp, mv, ln, install, rsync: a destination (and for ln and cp, what it stands for)."""
    paths, dest = _copy_operands(chk, name, args, ctx)
    if name == "rsync":
        paths = [p for p in paths if not re.match(r"^[\w.-]+@?[\w.-]*:", p)]
    install_dirs = name == "install" and "-d" in args
    if install_dirs:
        for p in paths:
            chk.check_write(p, name)
        return
    if dest is None:
        if len(paths) < (1 if name == "ln" else 2):
            if name == "ln" and paths:
                dest = "./" + posixpath.basename(paths[0].rstrip("/"))
            else:
                return
        else:
            dest, paths = paths[-1], paths[:-1]
    symbolic = name == "ln" and any(a.startswith("-") and not a.startswith("--") and "s" in a
                                    or a == "--symbolic" for a in args)
    chk.check_write(dest, name, follow_last=not (name == "ln"))
    if name == "mv":
        for p in paths:
            w = chk.where(p, follow_last=False)
            if w.kind not in ("ws", "scratch", "safe", "unknown"):
                chk.refuse(f"mv moves {show(p)} away (outside the workspace)")
    dcomps = chk.abs_comps(dest)
    if dcomps is None:
        return
    into_dir = dest.endswith("/") or len(paths) > 1
    for src in paths[:16]:
        target = dcomps + (posixpath.basename(src.rstrip("/")),) if into_dir else dcomps
        _copy_made(chk, name, src, target, symbolic)


def _copy_operands(chk: State, name: str, args: list[str],
                   ctx: Ctx) -> tuple[list[str], str | None]:
    """(the source paths, the -t destination or None); options carrying code or setuid bits
    are checked on the way."""
    paths: list[str] = []
    dest: str | None = None
    i = 0
    after = False
    while i < len(args):
        a = args[i]
        if not after and a == "--":
            after = True
        elif not after and a in ("-t", "--target-directory") and i + 1 < len(args):
            dest = args[i + 1]
            i += 1
        elif not after and a.startswith("--target-directory="):
            dest = a.split("=", 1)[1]
        elif not after and name == "rsync" and a in ("-e", "--rsh") and i + 1 < len(args):
            chk.shell_code(args[i + 1], ctx, "rsync -e")
            i += 1
        elif not after and name == "rsync" and a.startswith("--rsh="):
            chk.shell_code(a.split("=", 1)[1], ctx, "rsync -e")
        elif not after and name == "install" and a in ("-m", "--mode") and i + 1 < len(args):
            if re.fullmatch(r"0*[2-7][0-7]{3}", args[i + 1]) or "s" in args[i + 1]:
                chk.refuse("sets a setuid/setgid bit")
            i += 1
        elif not after and name == "install" and a in ("-o", "--owner") and i + 1 < len(args):
            if args[i + 1] in ("root", "0"):
                chk.refuse("gives files to root")
            i += 1
        elif not after and a in _COPY_TAKES:
            i += 1
        elif after or not a.startswith("-"):
            paths.append(a)
        i += 1
    return paths, dest


def _copy_made(chk: State, name: str, src: str, target: Comps, symbolic: bool) -> None:
    """What ``target`` stands for once ``src`` is linked or copied there: a link, a copy of
    a program, or a copy of a file the command wrote."""
    if name == "ln":
        if symbolic and not src.startswith("/"):
            link_dir = "/" + "/".join(target[:-1])
            w = chk.where_abs(link_dir + "/" + src, True) if UNK not in src \
                else Where("unknown", None)
        else:
            w = chk.where(src)
        chk.links[target] = w.comps if w.kind != "unknown" else None
        if w.comps is not None and w.comps and not GLOB.search(w.comps[-1]):
            chk.programs[target] = w.comps[-1]
    elif name in ("cp", "install", "mv"):
        scomps = chk.abs_comps(src)
        if scomps is None:
            return
        if scomps in chk.files:
            chk.files[target] = chk.files[scomps]
        elif scomps in chk.programs:
            chk.programs[target] = chk.programs[scomps]
        elif chk.where(src).kind not in ("ws", "scratch") and scomps:
            chk.programs[target] = scomps[-1]


def _r_sed(chk: State, name: str, args: list[str], io: IO, ctx: Ctx) -> None:
    inplace = any(a.startswith("-i") or a.startswith("--in-place") or
                  (a.startswith("-") and not a.startswith("--") and "i" in a[1:] and
                   not a.startswith("-e")) for a in args)
    scripts: list[str] = []
    files: list[str] = []
    i, has_e = 0, False
    while i < len(args):
        a = args[i]
        if a in ("-e", "--expression") and i + 1 < len(args):
            scripts.append(args[i + 1])
            has_e = True
            i += 2
            continue
        if a in ("-f", "--file") and i + 1 < len(args):
            has_e = True
            i += 2
            continue
        if a.startswith("--expression="):
            scripts.append(a.split("=", 1)[1])
            has_e = True
        elif not a.startswith("-") or a == "-":
            files.append(a)
        i += 1
    if not has_e and files:
        scripts.append(files.pop(0))
    for s in scripts:
        if _SED_EXEC.search(s):
            chk.refuse("sed script runs commands (e)")
        for m in _SED_WRITE.finditer(s):
            target = m.group(1) or m.group(3)
            if target and target not in ("/dev/stdout", "/dev/stderr"):
                chk.check_write(target, "sed")
    if inplace:
        for f in files:
            chk.check_write(f, name)


def _r_tar(chk: State, name: str, args: list[str], io: IO, ctx: Ctx) -> None:
    first = args[0] if args else ""
    mode = first.lstrip("-") if first and not first.startswith("--") else ""
    flags = "".join(a.lstrip("-") for a in args if a.startswith("-") and not a.startswith("--"))
    creating = any(c in (mode + flags) for c in "cru") or "--create" in args
    extracting = "x" in (mode + flags) or "--extract" in args or "--get" in args
    dest: str | None = None
    for k, a in enumerate(args):
        if a in ("-C", "--directory") and k + 1 < len(args):
            dest = args[k + 1]
        elif a.startswith("--directory="):
            dest = a.split("=", 1)[1]
        elif a in ("-I", "--use-compress-program") and k + 1 < len(args):
            chk.shell_code(args[k + 1], ctx, "tar -I")
        elif a.startswith(_CODE_OPTIONS["tar"]):
            code = a.split("=", 1)[1]
            if code.startswith("exec="):
                code = code[5:]
            chk.shell_code(code, ctx, "tar")
        elif creating and (a == "-f" or a == "--file") and k + 1 < len(args):
            chk.check_write(args[k + 1], "tar")
        elif creating and a.startswith("--file="):
            chk.check_write(a.split("=", 1)[1], "tar")
    if creating and mode and "f" in mode and not first.startswith("-") and len(args) > 1:
        chk.check_write(args[1], "tar")
    if extracting and dest is not None:
        chk.check_write(dest if dest.endswith("/") else dest + "/", "tar",)
    if extracting and ("-P" in args or "--absolute-names" in args):
        chk.refuse("tar extracts absolute paths (-P)")


def _r_unzip(chk: State, name: str, args: list[str], io: IO, ctx: Ctx) -> None:
    for k, a in enumerate(args):
        if a == "-d" and k + 1 < len(args):
            chk.check_write(args[k + 1].rstrip("/") + "/", name)
        elif name.startswith("7z") and a.startswith("-o") and len(a) > 2:
            chk.check_write(a[2:] + "/", name)


def _r_dd(chk: State, name: str, args: list[str], io: IO, ctx: Ctx) -> None:
    for a in args:
        if a.startswith("of="):
            target = a[3:]
            w = chk.where(target)
            if w.kind == "device" and w.path and DISK_DEVICE.match(w.path):
                chk.refuse(f"dd writes to {show(target)} (a disk device)")
            elif w.kind not in ("ws", "scratch", "safe", "fd"):
                chk.refuse(f"dd writes to {show(target)} (outside the workspace)")
        elif a.startswith("if="):
            chk.check_read(a[3:], "dd")


def _r_download(chk: State, name: str, args: list[str], io: IO, ctx: Ctx) -> None:
    outs: list[str] = []
    dirs: list[str] = []
    urls = [a for a in args if re.match(r"^[a-z]+://", a)]
    for k, a in enumerate(args):
        nxt = args[k + 1] if k + 1 < len(args) else None
        if name == "curl":
            if a in ("-o", "--output") and nxt:
                outs.append(nxt)
            elif a.startswith("-o") and len(a) > 2 and not a.startswith("--"):
                outs.append(a[2:])
            elif a == "--output-dir" and nxt:
                dirs.append(nxt)
            elif a in ("-O", "--remote-name") or (a.startswith("-") and not a.startswith("--")
                                                  and "O" in a):
                outs.extend(posixpath.basename(u.split("?")[0]) for u in urls)
            elif a in ("-T", "--upload-file") and nxt:
                chk.check_read(nxt, "curl")
            elif a.startswith("-d@") or a.startswith("--data-binary=@"):
                chk.check_read(a.split("@", 1)[1], "curl")
            elif a in ("-d", "--data", "--data-binary", "-F", "--form") and nxt and "@" in nxt:
                chk.check_read(nxt.split("@", 1)[1], "curl")
        elif name == "wget":
            if a in ("-O", "--output-document") and nxt:
                outs.append(nxt)
            elif a.startswith("--output-document="):
                outs.append(a.split("=", 1)[1])
            elif a.startswith("-O") and len(a) > 2:
                outs.append(a[2:])
            elif a in ("-P", "--directory-prefix") and nxt:
                dirs.append(nxt)
    if name == "wget" and not outs and not any(a.startswith("-O") or a.startswith(
            "--output-document") for a in args):
        outs.extend(posixpath.basename(u.split("?")[0]) or "index.html" for u in urls)
    for d in dirs:
        chk.check_write(d + "/", name)
    for o in outs:
        if o == "-":
            continue
        full = (dirs[0].rstrip("/") + "/" + o) if dirs and not o.startswith("/") else o
        chk.check_write(full, name)
        comps = chk.abs_comps(full)
        if comps is not None:
            chk.files[comps] = ("download", name)


def _r_git(chk: State, name: str, args: list[str], io: IO, ctx: Ctx) -> None:
    for k, a in enumerate(args):
        if a == "-c" and k + 1 < len(args) and "=" in args[k + 1]:
            key, val = args[k + 1].split("=", 1)
            key = key.lower()
            if key.startswith("alias.") and val.startswith("!"):
                chk.shell_code(val[1:], ctx, f"git {key}")
            elif key in ("core.sshcommand", "core.pager", "core.fsmonitor", "core.editor",
                         "diff.external", "sequence.editor", "core.hookspath",
                         "credential.helper", "gpg.program", "core.gitproxy"):
                if key == "core.hookspath":
                    chk.check_write(val, "git")
                else:
                    chk.shell_code(val.lstrip("!"), ctx, f"git {key}")
    sub = next((a for a in args if not a.startswith("-") and "=" not in a), None)
    if sub == "clone":
        rest = [a for a in args[args.index("clone") + 1:] if not a.startswith("-")]
        if len(rest) >= 2:
            chk.check_write(rest[1], "git clone")


def _r_systemctl(chk: State, name: str, args: list[str], io: IO, ctx: Ctx) -> None:
    verbs = [a for a in args if not a.startswith("-")]
    if set(verbs) & {"poweroff", "reboot", "halt", "kexec", "suspend", "hibernate",
                     "hybrid-sleep", "emergency", "rescue", "soft-reboot"}:
        chk.refuse(f"stops the machine ({name})")
    elif set(verbs) & {"start", "stop", "restart", "reload", "enable", "disable", "mask",
                       "unmask", "kill", "isolate", "daemon-reload", "set-default", "edit",
                       "set-property", "link", "revert", "try-restart", "reload-or-restart"}:
        chk.refuse(f"changes system services ({name})")


def _r_service(chk: State, name: str, args: list[str], io: IO, ctx: Ctx) -> None:
    if any(a in ("start", "stop", "restart", "reload", "force-reload", "--full-restart")
           for a in args):
        chk.refuse(f"changes system services ({name})")


def _r_sysctl(chk: State, name: str, args: list[str], io: IO, ctx: Ctx) -> None:
    if any(a in ("-w", "--write", "-p", "--load", "--system") or "=" in a for a in args):
        chk.refuse(f"changes the system configuration ({name})")


def _r_ip(chk: State, name: str, args: list[str], io: IO, ctx: Ctx) -> None:
    words = [a for a in args if not a.startswith("-")]
    if name in ("ip",) and len(words) >= 2 and words[1] in (
            "add", "del", "delete", "set", "change", "replace", "flush", "append") or \
            name in ("ifconfig", "route") and any(a in ("down", "up", "add", "del") for a in args):
        chk.refuse(f"changes the network configuration ({name})")


def _r_nc(chk: State, name: str, args: list[str], io: IO, ctx: Ctx) -> None:
    if any(a in ("-e", "-c", "--exec", "--sh-exec", "--lua-exec") or
           re.fullmatch(r"-[a-zA-Z]*[ec]", a) for a in args):
        chk.refuse(f"{name} runs a program for a network connection (a reverse shell?)")
    if name == "socat" and any(re.search(r"(?i)\b(exec|system):", a) for a in args):
        chk.refuse(f"{name} runs a program for a network connection (a reverse shell?)")


def _r_container(chk: State, name: str, args: list[str], io: IO, ctx: Ctx) -> None:
    joined = " ".join(args)
    if "--privileged" in args or re.search(r"--pid[= ]host|--net[= ]host|--userns[= ]host|"
                                           r"--cap-add[= ](ALL|SYS_ADMIN)|"
                                           r"(-v|--volume|--mount)[= ]\S*/:|"
                                           r"docker\.sock", joined) or \
            re.search(r"(^| )(-v|--volume)[= ]?/[:]", joined):
        chk.refuse(f"privilege escalation ({name} with host access)")


def _r_ssh(chk: State, name: str, args: list[str], io: IO, ctx: Ctx) -> None:
    for k, a in enumerate(args):
        val: str | None = None
        if a == "-o" and k + 1 < len(args):
            val = args[k + 1]
        elif a.startswith("-o"):
            val = a[2:]
        if val and re.match(r"(?i)(ProxyCommand|LocalCommand|KnownHostsCommand)[ =]", val):
            chk.shell_code(re.split(r"[ =]", val, maxsplit=1)[1], ctx, f"{name} -o")


def _r_vim(chk: State, name: str, args: list[str], io: IO, ctx: Ctx) -> None:
    for k, a in enumerate(args):
        cmd: str | None = None
        if a in ("-c", "--cmd") and k + 1 < len(args):
            cmd = args[k + 1]
        elif a.startswith("+"):
            cmd = a[1:]
        if cmd and "!" in cmd:
            chk.shell_code(cmd.split("!", 1)[1], ctx, f"{name} -c")


PROGRAM_RULES: dict[str, Rule] = {
    "rm": _r_rm, "find": _r_find, "xargs": _r_xargs, "parallel": _r_parallel,
    "eval": _r_eval, "source": _r_source, ".": _r_source, "trap": _r_trap, "alias": _r_alias,
    "hash": _r_hash, "cd": _r_cd, "pushd": _r_cd, "popd": _r_cd,
    "kill": _r_kill, "pkill": _r_kill, "killall": _r_kill, "chmod": _r_chmod,
    "chown": _r_chown, "chgrp": _r_chown, "tee": _r_writer_all, "truncate": _r_writer_all,
    "touch": _r_writer_all, "mkdir": _r_writer_all, "rmdir": _r_writer_all,
    "unlink": _r_writer_all, "shred": _r_writer_all, "chattr": _r_writer_all,
    "setfacl": _r_writer_all, "mkfifo": _r_writer_all, "mknod": _r_writer_all,
    "split": _r_writer_all, "cp": _r_copy, "mv": _r_copy, "ln": _r_copy, "install": _r_copy,
    "rsync": _r_copy, "link": _r_copy, "sed": _r_sed, "tar": _r_tar, "unzip": _r_unzip,
    "7z": _r_unzip, "7za": _r_unzip, "dd": _r_dd, "curl": _r_download, "wget": _r_download,
    "git": _r_git, "systemctl": _r_systemctl, "service": _r_service, "sysctl": _r_sysctl,
    "ip": _r_ip, "ifconfig": _r_ip, "route": _r_ip, "nc": _r_nc, "ncat": _r_nc,
    "netcat": _r_nc, "socat": _r_nc, "docker": _r_container, "podman": _r_container,
    "nerdctl": _r_container, "ssh": _r_ssh, "scp": _r_ssh, "vim": _r_vim, "vi": _r_vim,
    "nvim": _r_vim, "ex": _r_vim,
}

# the programs a name given as a glob pattern (/bin/r?) is checked as
KNOWN = sorted(ESCALATION | DISK_TOOLS | POWER | KERNEL | SHELLS | DOWNLOADERS |
               set(PROGRAM_RULES) | {"mkfs", "mkfs.ext4", "mkfs.xfs", "python", "python3",
                                     "perl", "ruby", "node", "php"})
