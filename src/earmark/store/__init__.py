"""Where everything lasts: the project folder and its config (:mod:`.project`), the
database schema and its transactions (:mod:`.db`), and snapshots of the database with
putting one back (:mod:`.backup`)."""
