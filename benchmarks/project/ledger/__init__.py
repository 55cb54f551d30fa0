"""Sales and their lines, three identical copies: one read by no view (the baseline),
one by a full-refresh view, one by an incremental view (app label ``benchledger``)."""
