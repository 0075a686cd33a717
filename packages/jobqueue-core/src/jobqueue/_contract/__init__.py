"""The storage contract, its records, rules and codecs (public as ``jobqueue.storage``)."""
