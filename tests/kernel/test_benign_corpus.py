"""The project's benign corpus: ordinary admin and developer work run against ``sysward run``
with its default rules, counting the alerts it raises (issue 12's target: at most 2).

The work is a script (``CORPUS`` below): apt-get install and remove of a small package, a
venv and pip install, git init/commit/clone/commit, a make + cc build and its binary run, cp,
tar and rsync copies, ssh-keygen, editing dotfiles with sed and vim, and an interactive
bash session (on a terminal, via script(1)) that saves its history.  It runs in its own
session; every default rule's output is extended (a rule file with ``override: {output:
append}``) with the session id and the first ancestors' pids, so the alerts of this work
are told apart from whatever else the shared machine does.  Each alert it may raise is
listed in docs/rules.md ("Benign corpus") with why; the test fails on any other.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from agent_harness import AgentProcess

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "src" / "sysward" / "rules.d"
DEPTH = 8  # ancestors whose pid the appended output carries

#: rule -> why it fires on this work (docs/rules.md repeats these)
EXPECTED = {
    "Shell Profile Modified": "editing ~/.bashrc is the dotfile edit of the corpus; the rule "
                              "exists to report exactly that write (T1546.004)",
}

CORPUS = r"""
set -u
cd "$WORK"
export HOME="$WORK/home"
mkdir -p "$HOME"
# --- packages: a small one installed and removed again
if [ "${SW_CORPUS_APT:-1}" = 1 ] && ! dpkg -s hello >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q hello >/dev/null 2>&1 && hello >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get remove -y -q hello >/dev/null 2>&1
fi
# --- python: a venv and a pip install (network may be missing: the attempt is the work)
python3 -m venv "$WORK/venv" >/dev/null 2>&1
"$WORK/venv/bin/pip" install -q --disable-pip-version-check six >/dev/null 2>&1
"$WORK/venv/bin/python" -c "import sys; print(sys.prefix)" >/dev/null
# --- git
mkdir -p "$WORK/proj" && cd "$WORK/proj"
git init -q . && git config user.email dev@example.com && git config user.name Dev
printf 'int main(void) { return 0; }\n' > hello.c
printf 'hello: hello.c\n\tcc -O2 -o hello hello.c\n' > Makefile
git add . && git commit -qm "first"
cd "$WORK" && git clone -q "$WORK/proj" "$WORK/clone" && cd "$WORK/clone"
git config user.email dev@example.com && git config user.name Dev
echo "# notes" > README.md && git add README.md && git commit -qm "readme"
git log --oneline >/dev/null
# --- build and run
make -s && ./hello
cc -o "$WORK/hello2" hello.c && "$WORK/hello2"
# --- copies
cd "$WORK"
cp -r clone clone-copy
tar czf clone.tgz clone && mkdir -p untar && tar xzf clone.tgz -C untar
if command -v rsync >/dev/null; then rsync -a clone/ rsync-copy/; fi
# --- keys
ssh-keygen -q -t ed25519 -N "" -C dev@example.com -f "$HOME/id_test" >/dev/null
# --- dotfiles
printf 'export EDITOR=vim\n' > "$HOME/.bashrc"
sed -i 's/vim/nano/' "$HOME/.bashrc"
vim -es -c 'normal Goalias ll="ls -l"' -c 'wq' "$HOME/.gitconfig" </dev/null >/dev/null 2>&1
# --- an interactive shell on a terminal, with history
printf 'cd %s\nls -l\necho hello\ngit -C clone status --short\nhistory | tail -3\nexit\n' "$WORK" |
    script -qfc "bash --norc -i" /dev/null >/dev/null 2>&1
true
"""


def _override_file(tmp: Path) -> Path:
    """Append the session id and the ancestors' pids to every default rule's output."""
    tag = " corpus=%proc.sid" + "".join(f"/%proc.apid[{i}]" for i in range(1, DEPTH + 1))
    items = []
    for f in sorted(RULES_DIR.glob("*.yaml")):
        for item in yaml.safe_load(f.read_text()) or []:
            if isinstance(item, dict) and "rule" in item:
                items.append({"rule": item["rule"], "output": tag,
                              "override": {"output": "append"}})
    path = tmp / "corpus-tags.yaml"
    path.write_text(yaml.safe_dump(items, sort_keys=False))
    return path


def _ours(output: str, root: int) -> bool:
    m = re.search(r" corpus=([0-9/<NA>]+)", output)
    if m is None:
        return False
    return str(root) in m.group(1).split("/")


@pytest.mark.timeout(300)
def test_benign_corpus_raises_only_the_documented_alerts(tmp_path: Path) -> None:
    for tool in ("git", "make", "cc", "ssh-keygen", "script", "tar", "vim", "python3"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    work = tmp_path / "work"
    work.mkdir()
    rules = [str(RULES_DIR), str(_override_file(tmp_path))]
    agent = AgentProcess(tmp_path, "--rules", rules[0], "--rules", rules[1], grouping=True)
    try:
        time.sleep(0.5)
        script = tmp_path / "corpus.sh"
        script.write_text(textwrap.dedent(CORPUS))
        # its own session: the corpus root is the session leader, pid == sid
        proc = subprocess.Popen(["bash", str(script)], cwd=work, start_new_session=True,
                                env={**os.environ, "WORK": str(work)},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, out
        root = proc.pid
        time.sleep(1.5)  # the last events through the pipeline
    finally:
        agent.stop()
    stored = agent.stored_rules()
    ours = [(rule, output) for rule, output in stored if _ours(output, root)]
    report = "\n".join(f"  {rule}: {output[:300]}" for rule, output in ours)
    print(f"benign corpus: {len(ours)} alerts\n{report}", file=sys.stderr)
    unexpected = [(r, o) for r, o in ours if r not in EXPECTED]
    assert not unexpected, f"alerts on benign work that docs/rules.md does not list:\n{report}"
    notified = len({r for r, _ in ours})  # grouping: one notification per rule and tree
    assert notified <= 2, report
