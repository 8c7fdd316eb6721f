"""Referral codes, peer-educator links, counters, indicators and reports.

Built on storage/ only. The referrals issue fills this package; nothing in it yet.
"""
