"""RQ (the Python job queue) against Ferrite as a tenant: enqueue a job, run
a burst worker, read the job's result back (RQ keeps results in streams).
Usage: python3 rq_tenant.py <port> <tenant> <password>; prints `result <n>`."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from redis import Redis  # noqa: E402
from rq import Queue, Worker  # noqa: E402

from rq_jobs import add  # noqa: E402

port, tenant, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
conn = Redis(host="127.0.0.1", port=port, username=tenant, password=password)
queue = Queue("default", connection=conn)
job = queue.enqueue(add, 2, 3)
Worker([queue], connection=conn).work(burst=True)
job.refresh()
latest = job.latest_result()
print("status", job.get_status().value)
print("result", latest.return_value if latest else None)
