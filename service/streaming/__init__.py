"""Streaming an account's log to the customer's own systems (SIEMs, collectors, clusters).

:mod:`~service.streaming.senders` speak each receiver's protocol (an HTTPS webhook, Splunk's
HTTP Event Collector, syslog over TCP or TLS, an Elasticsearch or OpenSearch ``_bulk``);
:mod:`~service.streaming.guard` keeps them off the service's own network (no SSRF). What is sent
and when (positions, retries, pauses) is the delivery loop's, in :mod:`service.actions`.
"""
