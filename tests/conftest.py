"""OMP_WAIT_POLICY=PASSIVE for this process and every process the tests start (they inherit it): an idle
OpenMP thread sleeps at once instead of spinning.

torch runs its intra-op work on two threads on a 2-core machine. While any other process is busy
(a test's CLI run or trainings beside this one, or another job on the machine), each op's barrier
waits for a descheduled sibling that spins: one training step of the bundled vocoder took 45 s
with the default policy and 6.7 s with PASSIVE beside a busy process (6.6 s on one thread). The
policy is read when torch loads its OpenMP runtime, hence before any test imports torch. It changes
how threads wait, not how work is split among them: results are the same."""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# the text front end's cache (wavediff.text.g2p.cache_dir) in a folder of this run's, not the user's
import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

if "WAVEDIFF_CACHE_DIR" not in os.environ:
    os.environ["WAVEDIFF_CACHE_DIR"] = tempfile.mkdtemp(prefix="wavediff-test-cache-")
    atexit.register(shutil.rmtree, os.environ["WAVEDIFF_CACHE_DIR"], True)
