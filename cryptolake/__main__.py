from cryptolake.cli import main

main()
