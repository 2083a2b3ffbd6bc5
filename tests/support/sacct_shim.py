"""sacct stand-in for a cluster without accounting: answers from `squeue --states=all`.

submitit polls ``sacct -o JobID,State,NodeList --parsable2 -j ID ...`` for job states; the
test cluster puts this first on its clients' PATH (support.slurm_setup.install_sacct_shim)."""

from __future__ import annotations

import subprocess
import sys

SQUEUE_FIELDS = {"jobid": "%i", "state": "%T", "nodelist": "%N", "jobname": "%j",
                 "partition": "%P", "user": "%u", "elapsed": "%M", "timelimit": "%l",
                 "ncpus": "%C", "nnodes": "%D", "reason": "%r", "start": "%S",
                 "submit": "%V", "end": "%e", "workdir": "%Z"}


def main(argv):
    fields, jobs, delim, header = ["JobID", "JobName", "State"], [], None, True
    args = iter(argv)
    for arg in args:
        key, _, value = arg.partition("=")
        if key in ("-o", "--format"):
            fields = (value or next(args)).split(",")
        elif key in ("-j", "--jobs"):
            jobs.extend((value or next(args)).split(","))
        elif key in ("-P", "--parsable2") or key in ("-p", "--parsable"):
            delim = "|"
        elif key in ("-n", "--noheader"):
            header = False
        # anything else (-X, --starttime, -u, ...) is accepted and ignored
    fields = [f.split("%")[0] for f in fields if f]
    sep = "\x1f"
    fmt = sep.join(SQUEUE_FIELDS.get(f.lower(), "") for f in fields)
    cmd = ["squeue", "--noheader", "--states=all", "--array", "--format=" + fmt]
    if jobs:
        cmd.append("--jobs=" + ",".join(jobs))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    rows = [] if proc.returncode else [line.split(sep) for line in proc.stdout.splitlines()]
    delim = delim or " "
    out = [delim.join(fields)] if header else []
    out += [delim.join(cell.strip() for cell in row) for row in rows]
    sys.stdout.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
