from boxoffice.cli import main

main()
