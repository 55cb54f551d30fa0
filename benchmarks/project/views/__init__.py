"""The two live_matview views over the shop (app label ``benchviews``)."""
