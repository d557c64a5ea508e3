"""The `metropolis` command line."""
