"""The transport seam: one contract every registered transport passes, and the os transport's particulars."""
