"""Recording scripts for golden numbers from the authors' released code (see README.md)."""
