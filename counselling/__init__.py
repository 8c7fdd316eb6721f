"""The counsellor chat's rules (issue #18): cases, the queue, who may see and do what, masking
what would name a person, on-duty hours. Built on storage/ (and referrals/ for counting), below
bot/: the staff app and the runtime call these use cases; nothing here knows a channel or a page.
"""
