"""``python -m stacksim`` runs the command line."""

from stacksim.cli import main

main()
