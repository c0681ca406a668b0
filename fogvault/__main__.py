from fogvault.cli.app import main

main()
