"""Tests of referrals/: codes, counting, redemption, published figures and reports."""
