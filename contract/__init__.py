"""The bottom layer: the wire contract (`protocol`) and the NPS arithmetic (`nps`).

Both are fixed by ../shared/contract.md. The gateway, the server, the broker
tools and the command line import this package; it imports none of them.
"""
