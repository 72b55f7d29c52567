"""Just-in-time elevation: a person asks for one catalogued elevation, someone else approves it,
and the grant ends by itself.

Design (docs/jit.md draws it). Each catalogue entry has its own elevation role, created by the
stack (`components/jit.py`) with the entry's permissions and a trust policy that admits nobody.
Granting an approved request changes two documents on that role, in this order:

1. the inline policy `ztai-jit-window`: Deny everything once `aws:CurrentTime` reaches the expiry,
   and Deny every session whose `aws:TokenIssueTime` is older than the last revocation;
2. the trust policy: the requester's own session (its role, `aws:userid` ending in its session
   name, and `sts:SourceIdentity` equal to it: the person the IdP asserted, which the human roles'
   trust binds to the session name and which role chaining carries unchanged) may assume the role
   while `aws:CurrentTime` is before the expiry.

Both carry the expiry, so the grant is harmless if revocation never runs. Revocation (on demand,
or at expiry by a one-time EventBridge Scheduler schedule that runs `handler.expire`) moves the
TokenIssueTime floor to now and puts the trust back to admitting nobody, and only then records the
request as ended, so a retry after a failed IAM write finishes the job: sessions issued before
it are refused at once, which is how AWS itself revokes role sessions ("Revoke IAM role temporary
security credentials", IAM user guide). IAM is eventually consistent ("Changes that I make are not
always immediately visible", IAM user guide): a change takes effect within seconds, not at once,
which is why the expiry is also written ahead of time into both documents.

One grant per elevation at a time: a lock item (`lock#<elevation>`) taken by a conditional write
refuses a second request for an elevation that is pending or active. Every transition is a
conditional update of the request's item, so approving twice, revoking an expired grant, or a
schedule firing after a manual revoke change nothing and say so. Each transition appends an event
(who, what, why, when) to the item and writes one JSON log line.
"""
