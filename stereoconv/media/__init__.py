"""Reading and writing pictures and videos."""
