"""``interp view``: an explorer of stores in the browser (views computed from the store, served or exported)."""
