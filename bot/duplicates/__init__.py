"""One problem, one ticket: the duplicate matcher, following a ticket, merging duplicates."""
