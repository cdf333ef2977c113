"""Identity: the people of a tenant (user profiles, teams), platform super-admins, and the
token issuers and realms they come from."""
