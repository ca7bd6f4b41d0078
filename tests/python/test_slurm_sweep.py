"""`scripts/sweep.py --slurm` against a real one-node Slurm (scripts/slurm_local.sh): the array and
gather jobs, the throttle, one log per task, a failed point resubmitted alone, a task stopped by
USR1 that is requeued and ends with the bytes of an uninterrupted run, and the same table and files
as the local mode. Run as a script (CTest does): exits 77, which CTest reports as skipped, only
where Slurm and munge are not installed or neither root nor sudo is at hand; on the CI machine they
are."""
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

from helpers import BINARY, MICRO, REPO, make_photo_folder, read_text

SWEEP = os.path.join(REPO, "scripts", "sweep.py")
CLUSTER = os.path.join(REPO, "scripts", "slurm_local.sh")
QUICK = ["--calib-size", "8", "--iters", "8", "--threads", "1"]
THROTTLE = 1  # the node has room for 2 or more tasks: at most 1 at once shows the throttle works


def why_not_runnable():
    if os.geteuid() != 0 and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode != 0:
        return "neither root nor password-less sudo: the one-node Slurm's daemons run as root"
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"  # where Debian puts the daemons
    missing = [t for t in ("munged", "slurmctld", "slurmd", "sbatch") if shutil.which(t, path=path) is None]
    return f"not installed: {', '.join(missing)} (apt-get install slurm-wlm munge)" if missing else None


def wait_for(predicate, seconds, what):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def numbers(path):
    """The table's rows without what may differ between two runs of the same points (time, paths)."""
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


class SlurmSweep(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="vimvq-slurm-")
        cls.data = os.path.join(cls.tmp, "data")
        make_photo_folder(cls.data)
        cls.cluster = os.path.join(cls.tmp, "cluster")
        subprocess.run([CLUSTER, "start", cls.cluster], check=True, timeout=120)
        cls.env = dict(os.environ, SLURM_CONF=os.path.join(cls.cluster, "slurm.conf"))

    @classmethod
    def tearDownClass(cls):
        pids = []
        for name in ("slurmd.pid", "slurmctld.pid", "munged.pid"):
            path = os.path.join(cls.cluster, name)
            if os.path.exists(path):
                pids.append(int(read_text(path).strip()))
        subprocess.run([CLUSTER, "stop", cls.cluster], timeout=60)
        for pid in pids:  # the daemons are gone
            if os.path.exists(f"/proc/{pid}"):
                with open(f"/proc/{pid}/stat") as f:
                    assert f.read().split()[2] == "Z", f"daemon {pid} still running"
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def sweep(self, out, *args, quantize=QUICK, slurm=True, job="vimvq-test", background=False):
        cmd = [sys.executable, SWEEP, MICRO, self.data, self.data, "--out", out, "--vimvq", BINARY,
               "--eval-args=--threads 1", *args]
        if slurm:
            cmd += ["--slurm", "--throttle", str(THROTTLE), "--job-name", job, "--time", "10:00", "--wait"]
        cmd += ["--", *quantize]
        if background:
            return subprocess.Popen(cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=600)

    def job_states(self, job):
        """JobState of each ended job of that name, from the job completion log."""
        lines = read_text(os.path.join(self.cluster, "jobcomp.txt")).splitlines()
        return [re.search(r"JobState=(\S+)", line).group(1) for line in lines if f" Name={job} " in line]

    def test_array_throttle_failure_rerun_and_same_table_as_local(self):
        points = ["--bits", "2", "3", "--methods", "rtn", "kmeans", "vimvq"]  # 6 points
        local = os.path.join(self.tmp, "local")
        r = self.sweep(local, *points, slurm=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        out = os.path.join(self.tmp, "slurm")
        os.makedirs(os.path.join(out, "kmeans_w3.vqpk"))  # a folder where the file goes: that point fails
        r = self.sweep(out, *points, job="vimvq-a")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)  # the gather job: a point has no result
        self.assertIn("submitted 6 of 6 points", r.stdout)
        states = self.job_states("vimvq-a")
        self.assertEqual(sorted(states), ["COMPLETED"] * 5 + ["FAILED"], states)
        self.assertEqual(self.job_states("vimvq-a-gather"), ["FAILED"])
        self.assertIn("| kmeans_w3 | missing |", read_text(os.path.join(out, "sweep.md")))

        os.rmdir(os.path.join(out, "kmeans_w3.vqpk"))
        r = self.sweep(out, *points, job="vimvq-b")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("submitted 1 of 6 points", r.stdout)  # only the failed one
        self.assertEqual(self.job_states("vimvq-b"), ["COMPLETED"])
        self.assertEqual(self.job_states("vimvq-b-gather"), ["COMPLETED"])

        # One log per task (the failed task's rerun is another array job: its own log).
        logs = sorted(os.listdir(os.path.join(out, "logs")))
        self.assertEqual(len([n for n in logs if n.startswith("vimvq-a_")]), 6, logs)
        self.assertEqual(len([n for n in logs if n.startswith("vimvq-b_")]), 1, logs)
        # At most THROTTLE tasks at once, from the start and end times each task logged.
        spans = []
        for name in logs:
            text = read_text(os.path.join(out, "logs", name))
            start, end = re.search(r"start (\S+) on", text), re.search(r"end (\S+) rc", text)
            if name.startswith("vimvq-a_"):
                spans.append((float(start.group(1)), float(end.group(1))))
        overlap = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
        self.assertLessEqual(overlap, THROTTLE, spans)

        # The same numbers and the same bytes as the local mode.
        self.assertEqual(numbers(os.path.join(out, "sweep.csv")), numbers(os.path.join(local, "sweep.csv")))
        for name in os.listdir(local):
            if name.endswith(".vqpk"):
                self.assertEqual(read_bytes(os.path.join(out, name)), read_bytes(os.path.join(local, name)), name)
        self.assertTrue(os.path.exists(os.path.join(out, "sweep_accuracy.png")))
        self.assertTrue(os.path.exists(os.path.join(out, "sweep_block_loss.png")))

    def test_usr1_requeues_and_resumes_to_the_same_bytes(self):
        long = ["--calib-size", "8", "--iters", "300", "--batch-size", "4", "--threads", "1"]
        point = ["--bits", "2", "--methods", "vimvq"]
        local = os.path.join(self.tmp, "usr1_local")
        r = self.sweep(local, *point, quantize=long, slurm=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        out = os.path.join(self.tmp, "usr1")
        proc = self.sweep(out, *point, quantize=long, job="vimvq-usr1", background=True)
        # Once the first block is done (the resume state exists), USR1 to the task's batch shell.
        state = os.path.join(out, "vimvq_w2.vqpk.resume")
        wait_for(lambda: os.path.exists(state) or proc.poll() is not None, 300, "the first block")
        self.assertIsNone(proc.poll(), "the point ended before a signal could be sent")
        task = subprocess.run(["squeue", "-h", "-n", "vimvq-usr1", "-t", "RUNNING", "-o", "%i"], env=self.env,
                              capture_output=True, text=True, check=True).stdout.split()
        self.assertEqual(len(task), 1, task)
        subprocess.run(["scancel", "-b", "-s", "USR1", task[0]], env=self.env, check=True)
        output = proc.communicate(timeout=600)[0]
        self.assertEqual(proc.returncode, 0, output)
        log = "".join(read_text(os.path.join(out, "logs", n)) for n in os.listdir(os.path.join(out, "logs"))
                      if n.startswith("vimvq-usr1_"))
        self.assertIn("stopped by USR1: requeued", log)
        self.assertIn("vimvq: stopped (SIGUSR1)", log)
        self.assertIn("restart 1", log)  # the second start of the same task
        self.assertEqual(log.count(" rc 0"), 1, log)  # run to completion once
        self.assertEqual(read_bytes(os.path.join(out, "vimvq_w2.vqpk")),
                         read_bytes(os.path.join(local, "vimvq_w2.vqpk")))
        self.assertFalse(os.path.exists(state))


if __name__ == "__main__":
    reason = why_not_runnable()
    if reason:
        print(f"skipped: {reason}")
        sys.exit(77)
    unittest.main(verbosity=2)
