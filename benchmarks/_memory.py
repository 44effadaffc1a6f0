"""Peak memory of work run in a fresh child process (so the figure is its own, not the parent's).

``SAMPLER`` is the head of a ``python -c`` script: it samples ``RssAnon`` (memory beyond mapped files)
every 50 ms in a thread and defines ``memory_mb()``, which returns that peak and ``VmHWM`` (peak resident
set, touched file pages included) in MB. The body after it does the work and prints its JSON.
"""

SAMPLER = r"""
import json, sys, threading, time
peak = {"anon_kb": 0}
def _sample():
    while True:
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                peak["anon_kb"] = max(peak["anon_kb"], int(line.split()[1]))
        time.sleep(0.05)
threading.Thread(target=_sample, daemon=True).start()
def memory_mb():
    hwm = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
    return {"peak_anon_mb": peak["anon_kb"] / 1024, "vm_hwm_mb": hwm / 1024}
"""
