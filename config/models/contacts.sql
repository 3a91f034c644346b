-- One row per user; `user_id` is the primary key, `email` matches HubSpot contacts.
SELECT
    u.id AS user_id,
    lower(u.email) AS email,
    u.first_name,
    u.last_name,
    p.tier AS plan
FROM analytics.users AS u
LEFT JOIN analytics.plans AS p ON p.user_id = u.id
