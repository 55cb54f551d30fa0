"""Bringing the database in line with the view models: catalog reads, DDL, the plan of a
sync and its one-transaction application, and the guard that lets migrations alter the
columns views read. Imports ``views`` and the leaves only.
"""
