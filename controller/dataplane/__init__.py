"""The dispatcher P4 program as the controller sees it: its constants, tables and digests."""
