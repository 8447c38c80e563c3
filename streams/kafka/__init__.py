"""The Kafka side: the worker and everything it needs.

``worker`` runs a member of the consumer group: ``eos`` (exactly-once processor: state
changelog, cells, dead letters and offsets in one transaction), ``partition`` (one input
partition's engine state and its codec), ``publisher`` (snapshots of the cells),
``analyst`` (models and hypotheses on the merged cells), ``alerting`` (the alert loop),
``outage`` (riding out a broker outage); ``client`` holds the aiokafka plumbing and
``settings`` the environment-driven configuration. Nothing outside ``streams`` imports
this package.
"""
