import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.Properties;

/**
 * A BI client in miniature: queries customer_360 with a fresh connection per query, until the
 * stop file appears. The first argument is either the serving database's path (DuckDB JDBC,
 * read-only) or a PostgreSQL JDBC URL of the SQL endpoint (`jdbc:postgresql://...`; user and
 * password from C360_SQL_USER / C360_SQL_PASSWORD). One line per query:
 * "ok <max as_of in epoch microseconds> <customers> <total orders>" or "error <message>".
 */
public class ServingLoop {
    public static void main(String[] args) throws Exception {
        String database = args[0];
        Path stopFile = Path.of(args[1]);
        long pauseMillis = Long.parseLong(args[2]);
        Properties properties = new Properties();
        String url;
        if (database.startsWith("jdbc:postgresql:")) {
            url = database;
            properties.setProperty("user", System.getenv().getOrDefault("C360_SQL_USER", "bi"));
            String password = System.getenv("C360_SQL_PASSWORD");
            if (password != null) {
                properties.setProperty("password", password);
            }
        } else {
            Class.forName("org.duckdb.DuckDBDriver");
            properties.setProperty("duckdb.read_only", "true");
            url = "jdbc:duckdb:" + database;
        }
        while (!Files.exists(stopFile)) {
            try (Connection connection = DriverManager.getConnection(url, properties);
                 Statement statement = connection.createStatement();
                 ResultSet rows = statement.executeQuery(
                     "select epoch_us(max(as_of)), count(*), sum(total_orders), min(age)"
                     + " from customer_360")) {
                rows.next();
                System.out.println("ok " + rows.getLong(1) + " " + rows.getLong(2) + " "
                    + rows.getLong(3));
            } catch (Exception e) {
                System.out.println("error " + e.toString().replace('\n', ' '));
            }
            System.out.flush();
            Thread.sleep(pauseMillis);
        }
    }
}
